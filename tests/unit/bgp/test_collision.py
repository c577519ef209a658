"""Connection collision resolution (RFC 4271 §6.8, RFC 6286 §2.3)."""

from __future__ import annotations

from ipaddress import IPv4Address

import attrs
import pytest

from bgp.codec import Notification
from bgp.collision import PeerConnections, resolve_collision
from bgp.errors import CeaseSubcode, ErrorCode
from bgp.fsm import NotificationReceived, State
from bgp.session import BgpSession

from .session_harness import (
    Link,
    config_a,
    config_b,
    established_link,
    notifications,
    of_type,
    session,
)

LOW = IPv4Address("10.0.0.1")
HIGH = IPv4Address("10.0.0.200")


@pytest.mark.parametrize(
    ("local_id", "remote_id", "existing_initiated_locally", "outcome"),
    [
        (HIGH, LOW, True, "keep_existing"),  # ours is higher: keep the one we opened
        (HIGH, LOW, False, "keep_new"),
        (LOW, HIGH, True, "keep_new"),  # theirs is higher: keep the one they opened
        (LOW, HIGH, False, "keep_existing"),
    ],
)
def test_higher_identifier_keeps_the_connection_it_initiated(
    local_id: IPv4Address, remote_id: IPv4Address, existing_initiated_locally: bool, outcome: str
) -> None:
    assert resolve_collision(local_id, remote_id, existing_initiated_locally) == outcome


def test_identifiers_compare_as_unsigned_integers() -> None:
    # 128.0.0.1 > 9.0.0.1 numerically even though "1" < "9" as text.
    assert resolve_collision(IPv4Address("128.0.0.1"), IPv4Address("9.0.0.1"), True) == (
        "keep_existing"
    )


def test_equal_identifiers_fall_back_to_the_larger_as() -> None:
    assert resolve_collision(LOW, LOW, True, local_asn=65200, remote_asn=65100) == "keep_existing"
    assert resolve_collision(LOW, LOW, True, local_asn=65100, remote_asn=65200) == "keep_new"
    assert resolve_collision(LOW, LOW, False, local_asn=65100, remote_asn=65100) == (
        "keep_existing"
    )


@attrs.define
class Collision:
    """A and B connect to each other at the same time: link_ab is A's connection, link_ba B's."""

    conns_a: PeerConnections
    conns_b: PeerConnections
    link_ab: Link
    link_ba: Link

    @classmethod
    def start(cls, id_a: IPv4Address, id_b: IPv4Address) -> Collision:
        cfg_a, cfg_b = config_a(local_router_id=id_a), config_b(local_router_id=id_b)
        a_out, b_out = session(cfg_a, 1), session(cfg_b, 2)
        a_in, b_in = session(cfg_a, 3), session(cfg_b, 4)
        for outgoing in (a_out, b_out):
            outgoing.start(0.0)
        for incoming in (a_in, b_in):
            incoming.start(0.0, passive=True)
        collision = cls(
            conns_a=PeerConnections(current=a_out),
            conns_b=PeerConnections(current=b_out),
            link_ab=Link(a_out, b_in),
            link_ba=Link(b_out, a_in),
        )
        collision.link_ab.connect(0.0)
        collision.link_ba.connect(0.0)
        assert collision.conns_b.accept(b_in, 0.0)
        assert collision.conns_a.accept(a_in, 0.0)
        return collision

    def exchange_opens(self) -> None:
        self.link_ab.step(0.0)
        self.link_ba.step(0.0)
        sessions = [self.link_ab.a, self.link_ab.b, self.link_ba.a, self.link_ba.b]
        assert all(s.state is State.OPENCONFIRM for s in sessions)

    def finish(self) -> None:
        self.link_ab.pump(0.0)
        self.link_ba.pump(0.0)


def assert_ceased(session_: BgpSession, subcode: CeaseSubcode) -> None:
    assert session_.state is State.IDLE
    assert session_.get_timer() is None  # a collision loser never restarts
    assert notifications(session_.data_to_send())[-1] == Notification(ErrorCode.CEASE, subcode)


@pytest.mark.parametrize("a_is_higher", [True, False])
def test_collision_keeps_the_connection_of_the_higher_identifier(a_is_higher: bool) -> None:
    id_a, id_b = (HIGH, LOW) if a_is_higher else (LOW, HIGH)
    collision = Collision.start(id_a, id_b)
    collision.exchange_opens()
    lost_a = collision.conns_a.resolve(0.0)
    lost_b = collision.conns_b.resolve(0.0)
    winner = collision.link_ab if a_is_higher else collision.link_ba
    loser = collision.link_ba if a_is_higher else collision.link_ab
    assert {lost_a, lost_b} == {loser.a, loser.b}
    for closed in (lost_a, lost_b):
        assert closed is not None
        assert_ceased(closed, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
    collision.finish()
    assert winner.a.state is State.ESTABLISHED and winner.b.state is State.ESTABLISHED
    assert {collision.conns_a.current, collision.conns_b.current} == {winner.a, winner.b}
    assert collision.conns_a.contender is None and collision.conns_b.contender is None
    assert collision.conns_a.resolve(0.0) is None


def test_a_late_resolver_follows_the_peers_decision() -> None:
    collision = Collision.start(HIGH, LOW)  # A wins: A's own connection (link_ab) survives
    collision.exchange_opens()
    assert collision.conns_a.resolve(0.0) is collision.link_ba.b
    collision.finish()  # B has not resolved yet: its outgoing session gets A's Cease
    b_out, b_in = collision.link_ba.a, collision.link_ab.b
    received = of_type(collision.link_ba.events_a, NotificationReceived)
    assert [(n.code, n.subcode) for n in received] == [(ErrorCode.CEASE, 7)]
    assert b_out.state is State.IDLE and b_out.get_timer() is not None  # would restart...
    assert b_in.state is State.ESTABLISHED
    assert collision.conns_b.resolve(0.0) is b_out
    assert b_out.get_timer() is None  # ...but the resolver stops it
    assert collision.conns_b.current is b_in


def test_an_established_session_rejects_a_new_connection() -> None:
    link = established_link()
    conns = PeerConnections(current=link.a)
    newcomer = session(config_a(), seed=9)
    newcomer.start(1.0, passive=True)
    newcomer.connection_made(1.0)
    assert not conns.accept(newcomer, 1.0)
    assert_ceased(newcomer, CeaseSubcode.CONNECTION_REJECTED)
    assert conns.current is link.a and conns.contender is None
    assert link.a.state is State.ESTABLISHED


def test_established_session_beats_a_contender_in_openconfirm() -> None:
    collision = Collision.start(LOW, HIGH)
    collision.link_ab.pump(0.0)  # A's own connection establishes first
    collision.link_ba.step(0.0)
    a_out, a_in = collision.link_ab.a, collision.link_ba.b
    assert a_out.state is State.ESTABLISHED and a_in.state is State.OPENCONFIRM
    assert collision.conns_a.resolve(0.0) is a_in
    assert_ceased(a_in, CeaseSubcode.CONNECTION_REJECTED)


def test_contender_that_establishes_replaces_a_current_without_connection() -> None:
    a_out = session(config_a(), 1)
    a_out.start(0.0)  # still connecting
    conns = PeerConnections(current=a_out)
    a_in = session(config_a(), 2)
    b = session(config_b(), 3)
    a_in.start(0.0, passive=True)
    b.start(0.0)
    link = Link(b, a_in)
    link.connect(0.0)
    assert conns.accept(a_in, 0.0)
    assert conns.resolve(0.0) is None  # nothing to decide while a_in is not up
    link.pump(0.0)
    assert conns.resolve(0.0) is a_out
    assert a_out.state is State.IDLE and a_out.get_timer() is None
    assert conns.current is a_in and conns.sessions == [a_in]


def test_a_contender_that_fails_is_dropped_and_never_restarts() -> None:
    a_out = session(config_a(), 1)
    a_out.start(0.0)
    conns = PeerConnections(current=a_out)
    a_in = session(config_a(), 2)
    a_in.start(0.0, passive=True)
    a_in.connection_made(0.0)
    assert conns.accept(a_in, 0.0)
    assert conns.resolve(0.0) is None
    a_in.connection_lost(1.0)  # falls back to Active, which would reconnect
    assert conns.resolve(1.0) is a_in
    assert a_in.state is State.IDLE and a_in.get_timer() is None
    assert conns.sessions == [a_out]


def test_first_session_and_second_contender() -> None:
    conns = PeerConnections()
    first, second, third = (session(config_a(), seed) for seed in (1, 2, 3))
    for s in (first, second, third):
        s.start(0.0, passive=True)
        s.connection_made(0.0)
    assert conns.accept(first, 0.0) and conns.current is first
    assert conns.accept(second, 0.0) and conns.contender is second
    assert not conns.accept(third, 0.0)
    assert_ceased(third, CeaseSubcode.CONNECTION_REJECTED)


def test_no_decision_while_a_connection_is_still_in_opensent() -> None:
    collision = Collision.start(HIGH, LOW)
    collision.link_ab.step(0.0)  # only A's connection has exchanged OPENs
    assert collision.conns_a.resolve(0.0) is None
    assert collision.conns_b.resolve(0.0) is None


def test_established_contender_beats_a_current_in_openconfirm() -> None:
    collision = Collision.start(HIGH, LOW)
    collision.link_ab.step(0.0)
    collision.link_ba.pump(0.0)  # B's connection establishes first although A's would win
    a_out, a_in = collision.link_ab.a, collision.link_ba.b
    assert a_out.state is State.OPENCONFIRM and a_in.state is State.ESTABLISHED
    assert collision.conns_a.resolve(0.0) is a_out
    assert_ceased(a_out, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
    assert collision.conns_a.current is a_in
