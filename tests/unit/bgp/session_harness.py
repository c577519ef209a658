"""Shared fixtures for the session, FSM and collision tests (this module holds no tests).

Time is a plain float; "TCP" is a pair of sessions whose `data_to_send` output is shuttled into
each other's `receive_data`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, TypeVar

import attrs

from bgp.codec import (
    AsPath,
    Message,
    MpReachNlri,
    Notification,
    Open,
    Origin,
    PathAttributes,
    Update,
    decode,
    encode,
    split_messages,
)
from bgp.fsm import Event, SessionConfig, State
from bgp.session import BgpSession
from bgp.types import Afi, Negotiated, Safi

ASN_A = 4_200_000_100
ASN_B = 4_200_000_101
ID_A = IPv4Address("192.168.80.252")
ID_B = IPv4Address("192.168.80.254")
ADDRESS_A = IPv4Address("192.168.80.252")
ADDRESS_B = IPv4Address("192.168.80.254")

VIP = IPv4Network("198.51.100.0/24")
VIP6 = IPv6Network("2001:db8:100::/48")

_E = TypeVar("_E")


def config_a(**overrides: Any) -> SessionConfig:
    """Speaker A (AS 4200000100) peering with B."""
    values: dict[str, Any] = {
        "local_asn": ASN_A,
        "local_router_id": ID_A,
        "peer_address": ADDRESS_B,
        "peer_asn": ASN_B,
    }
    values.update(overrides)
    return SessionConfig(**values)


def config_b(**overrides: Any) -> SessionConfig:
    """Speaker B (AS 4200000101) peering with A."""
    values: dict[str, Any] = {
        "local_asn": ASN_B,
        "local_router_id": ID_B,
        "peer_address": ADDRESS_A,
        "peer_asn": ASN_A,
    }
    values.update(overrides)
    return SessionConfig(**values)


def session(config: SessionConfig, seed: int = 0) -> BgpSession:
    return BgpSession(config, rng=random.Random(seed))


def of_type(events: Iterable[object], kind: type[_E]) -> list[_E]:
    return [event for event in events if isinstance(event, kind)]


def messages(data: bytes, negotiated: Negotiated | None = None) -> list[Message]:
    """Decode a byte stream the session sent (it must frame completely)."""
    wire = negotiated or Negotiated(four_octet_as=True, extended_message=True)
    raw, rest = split_messages(data, wire)
    assert rest == b""
    return [decode(message, wire) for message in raw]


def notifications(data: bytes) -> list[Notification]:
    return [m for m in messages(data) if isinstance(m, Notification)]


def announce(*prefixes: IPv4Network) -> Update:
    return Update(
        attributes=PathAttributes(
            origin=Origin.IGP, as_path=AsPath.sequence([ASN_A]), next_hop=ID_A
        ),
        nlri=prefixes,
    )


def announce6(*prefixes: IPv6Network) -> Update:
    return Update(
        attributes=PathAttributes(origin=Origin.IGP, as_path=AsPath.sequence([ASN_A])),
        mp_reach=MpReachNlri(Afi.IPV6, Safi.UNICAST, IPv6Address("2001:db8::252"), prefixes),
    )


def peer_open(
    asn: int = ASN_B, hold_time: int = 90, identifier: IPv4Address = ID_B, **caps: Any
) -> bytes:
    """B's OPEN as `config_b` would build it, with optional overrides, encoded."""
    local = config_b(local_asn=asn, **caps).local_open()
    message = Open(local.my_as, hold_time, identifier, local.capabilities, local.parameters)
    return encode(message, Negotiated())


@attrs.define
class Link:
    """An in-memory TCP connection between session ``a`` and session ``b``."""

    a: BgpSession
    b: BgpSession
    events_a: list[Event] = attrs.field(factory=list)
    events_b: list[Event] = attrs.field(factory=list)

    def connect(self, now: float) -> None:
        self.a.connection_made(now, initiated_locally=True)
        self.b.connection_made(now, initiated_locally=False)
        self.collect()

    def collect(self) -> None:
        self.events_a.extend(self.a.events())
        self.events_b.extend(self.b.events())

    def step(self, now: float) -> int:
        """Deliver what each side has queued right now, once; return the octets moved."""
        to_b = self.a.data_to_send()
        to_a = self.b.data_to_send()
        self.a.data_sent(len(to_b), now)
        self.b.data_sent(len(to_a), now)
        self.b.receive_data(to_b, now)
        self.a.receive_data(to_a, now)
        self.collect()
        return len(to_a) + len(to_b)

    def pump(self, now: float) -> None:
        while self.step(now):
            pass

    def advance(self, start: float, end: float) -> float:
        """Run both sessions' timers from ``start`` to ``end``, delivering traffic as it
        appears; return the time reached."""
        now = start
        while True:
            deadlines = [t for t in (self.a.get_timer(), self.b.get_timer()) if t is not None]
            if not deadlines or min(deadlines) > end:
                return end
            now = max(now, min(deadlines))
            self.a.handle_timer(now)
            self.b.handle_timer(now)
            self.pump(now)


def established_link(
    a_config: SessionConfig | None = None, b_config: SessionConfig | None = None, now: float = 0.0
) -> Link:
    """A active, B passive, both Established at ``now``; events so far are dropped."""
    a = session(a_config or config_a(), seed=1)
    b = session(b_config or config_b(passive=True), seed=2)
    a.start(now)
    b.start(now, passive=True)
    link = Link(a, b)
    link.connect(now)
    link.pump(now)
    assert a.state is State.ESTABLISHED, link.events_a
    assert b.state is State.ESTABLISHED, link.events_b
    link.events_a.clear()
    link.events_b.clear()
    return link


def state_of(session_: BgpSession) -> State:
    """The state, read through a call so that type checkers do not pin it across inputs."""
    return session_.state


def run_until(
    session_: BgpSession, now: float, until: Callable[[BgpSession], bool], limit: float
) -> float:
    """Fire ``session_``'s timers one deadline at a time until ``until`` holds."""
    while not until(session_):
        deadline = session_.get_timer()
        assert deadline is not None and deadline <= limit, (deadline, session_.state)
        now = deadline
        session_.handle_timer(now)
    return now
