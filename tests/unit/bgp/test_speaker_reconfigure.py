"""The speaker follows the running config: only what changed is touched.

The speaker runs in-process against fake routers: each is a passive `BgpSession` per accepted
connection on its own loopback address (127.0.0.2, 127.0.0.3), announcing one prefix. Config
generations are published in the state store as the daemon's reload does; the speaker answers
each with `Applied`. Hold time 0 on the routers' side keeps timers out of the picture, so the
real clock is used and every wait is bounded.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import trio

from appliance.config.model import Bgp, BgpPeer, Config, GracefulRestart, Node
from appliance.config.values import PrefixFilter
from appliance.keys import CONFIG_GENERATION, RUNNING_CONFIG, Applied, applied_key
from appliance.state import StateStore
from bgp.codec import AsPath, Origin, PathAttributes, Update
from bgp.errors import CeaseSubcode, ErrorCode
from bgp.fsm import NotificationReceived, SessionEstablished, UpdateReceived
from bgp.policy import ImportPolicy, PeerImport
from bgp.reconfig import plan
from bgp.rib import AdjRibIn, PeerInfo, RouteChange
from bgp.session import BgpSession, SessionConfig
from bgp.speaker import BgpSpeaker
from bgp.status import neighbor_key

LOCAL = ipaddress.IPv4Address("127.0.0.1")
A = ipaddress.IPv4Address("127.0.0.2")
B = ipaddress.IPv4Address("127.0.0.3")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
ROUTE: dict[Address, ipaddress.IPv4Network] = {
    A: ipaddress.IPv4Network("10.2.0.0/24"),
    B: ipaddress.IPv4Network("10.3.0.0/24"),
}
ASN: dict[Address, int] = {A: 65102, B: 65103}
WAIT_S = 10.0


class FakeRouter:
    """A BGP router on ``address``: accepts the speaker's connections one at a time (a fresh
    passive session each), announces its prefix once established, records what it sees."""

    def __init__(self, address: ipaddress.IPv4Address) -> None:
        self.address = address
        self.port = 0
        self.connections = 0
        self.established = 0
        self.updates_received = 0  # on the current connection
        self.notifications: list[tuple[int, int]] = []

    async def serve(self, *, task_status: trio.TaskStatus[None]) -> None:
        listeners = await trio.open_tcp_listeners(0, host=str(self.address))
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        async with listeners[0]:
            while True:
                stream = await listeners[0].accept()
                await self._session(stream)

    def _new_session(self) -> BgpSession:
        config = SessionConfig(
            local_asn=ASN[self.address],
            local_router_id=self.address,
            peer_address=LOCAL,
            peer_asn=65100,
            hold_time=0,
            passive=True,
        )
        return BgpSession(config, rng=random.Random(1))

    async def _session(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self.updates_received = 0
        session = self._new_session()
        now = trio.current_time()
        session.start(now, passive=True)
        session.connection_made(now)
        async with stream:
            while True:
                out = session.data_to_send()
                if out:
                    try:
                        await stream.send_all(out)
                    except trio.BrokenResourceError:
                        return
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                session.receive_data(data, trio.current_time())
                for event in session.events():
                    self._on_event(session, event)

    def _on_event(self, session: BgpSession, event: object) -> None:
        if isinstance(event, SessionEstablished):
            self.established += 1
            session.send_update(self._announcement(), trio.current_time())
        elif isinstance(event, UpdateReceived):
            self.updates_received += 1
        elif isinstance(event, NotificationReceived):
            self.notifications.append((event.code, event.subcode))

    def _announcement(self) -> Update:
        return Update(
            attributes=PathAttributes(
                origin=Origin.IGP,
                as_path=AsPath.sequence([ASN[self.address]]),
                next_hop=self.address,
            ),
            nlri=(ROUTE[self.address],),
        )


def bgp_section(routers: dict[ipaddress.IPv4Address, FakeRouter], **overrides: Any) -> Bgp:
    values: dict[str, Any] = {
        "asn": 65100,
        "router_id": ipaddress.IPv4Address("10.255.0.1"),
        "listen_port": 0,
        "peers": tuple(
            BgpPeer(address, ASN[address], port=router.port) for address, router in routers.items()
        ),
        "imports": (PrefixFilter(ipaddress.IPv4Network("10.0.0.0/8"), 8, 32),),
        "graceful_restart": GracefulRestart(enabled=False),
    }
    values.update(overrides)
    return Bgp(**values)


def with_peer(bgp: Bgp, address: ipaddress.IPv4Address, **changes: Any) -> Bgp:
    peers = tuple(
        attrs.evolve(peer, **changes) if peer.address == address else peer for peer in bgp.peers
    )
    return attrs.evolve(bgp, peers=peers)


def without_peer(bgp: Bgp, address: ipaddress.IPv4Address) -> Bgp:
    return attrs.evolve(bgp, peers=tuple(p for p in bgp.peers if p.address != address))


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (bounded in time)."""
    with trio.move_on_after(WAIT_S):
        while not predicate():
            await trio.sleep(0.01)
        return
    pytest.fail(f"timed out waiting for {what}")


@attrs.define
class Rig:
    store: StateStore
    speaker: BgpSpeaker
    routers: dict[ipaddress.IPv4Address, FakeRouter]
    bgp: Bgp
    generation: int = 1

    async def commit(self, bgp: Bgp) -> Applied:
        """Publish ``bgp`` as a new generation, as the daemon's reload does; its `Applied`."""
        self.generation += 1
        self.bgp = bgp
        cfg = self.store.require(RUNNING_CONFIG)
        self.store.publish(RUNNING_CONFIG, attrs.evolve(cfg, bgp=bgp))
        self.store.publish(CONFIG_GENERATION, self.generation)
        return await self.applied(self.generation)

    async def applied(self, generation: int) -> Applied:
        with trio.fail_after(WAIT_S):
            applied = await self.store.wait_for(
                applied_key("bgp"), lambda a: a is not None and a.generation == generation
            )
        assert applied is not None
        return applied

    def best(self) -> set[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return {route.prefix for route in self.speaker.best()}

    def established(self, address: Address) -> bool:
        status = self.store.get(neighbor_key(address))
        return status is not None and status.state == "Established"

    async def settled(self) -> None:
        """Every configured peer established and its route in the Loc-RIB."""
        for peer in self.bgp.peers:
            await self._settled(peer.address)

    async def _settled(self, address: Address) -> None:
        await until(lambda: self.established(address), f"{address} established")
        await until(lambda: ROUTE[address] in self.best(), f"{address}'s route")


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    routers = {A: FakeRouter(A), B: FakeRouter(B)}
    async with trio.open_nursery() as nursery:
        for router in routers.values():
            await nursery.start(router.serve)
        bgp = bgp_section(routers)
        store = StateStore()
        node = Node("node1", 1, ipaddress.IPv4Address("10.255.0.1"))
        store.publish(RUNNING_CONFIG, Config(node=node, bgp=bgp))
        store.publish(CONFIG_GENERATION, 1)
        speaker = BgpSpeaker(bgp, store)
        await nursery.start(speaker.run)
        rig = Rig(store, speaker, routers, bgp)
        assert await rig.applied(1) == Applied(1)
        await rig.settled()
        yield rig
        nursery.cancel_scope.cancel()


async def test_first_generation_is_applied_with_both_sessions_up(rig: Rig) -> None:
    assert rig.store.get(applied_key("bgp")) == Applied(1)
    assert rig.best() == {ROUTE[A], ROUTE[B]}
    assert [router.established for router in rig.routers.values()] == [1, 1]


async def test_changed_peer_is_reset_alone(rig: Rig) -> None:
    untouched = rig.speaker.peers[B]
    session_b = untouched.runner.session
    updates_b = rig.routers[B].updates_received

    applied = await rig.commit(with_peer(rig.bgp, A, hold_time=60))

    assert applied == Applied(2)
    await until(lambda: rig.routers[A].established == 2, "A established again")
    assert rig.routers[A].notifications == [
        (ErrorCode.CEASE, CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
    ]
    assert rig.speaker.peers[A].runner.config.hold_time == 60
    await rig.settled()
    # B: same session, never reset, nothing re-sent
    assert rig.speaker.peers[B] is untouched
    assert untouched.runner.session is session_b
    assert untouched.established_count == 1
    assert rig.routers[B].connections == 1
    assert rig.routers[B].notifications == []
    assert rig.routers[B].updates_received == updates_b


async def test_removed_peer_is_ceased_and_its_routes_and_status_go(rig: Rig) -> None:
    session_b = rig.speaker.peers[B].runner.session

    applied = await rig.commit(without_peer(rig.bgp, A))

    assert applied == Applied(2)
    assert rig.routers[A].notifications == [(ErrorCode.CEASE, CeaseSubcode.PEER_DE_CONFIGURED)]
    assert A not in rig.speaker.peers
    assert rig.store.get(neighbor_key(A)) is None
    assert rig.best() == {ROUTE[B]}
    assert rig.speaker.bgp.peers == rig.bgp.peers
    assert rig.speaker.peers[B].runner.session is session_b
    assert rig.routers[B].connections == 1

    applied = await rig.commit(bgp_section(rig.routers))  # added back

    assert applied == Applied(3)
    await rig.settled()
    assert rig.routers[A].established == 2
    assert rig.speaker.peers[B].runner.session is session_b
    assert rig.routers[B].established == 1


async def test_description_and_limit_change_in_place(rig: Rig) -> None:
    state = rig.speaker.peers[A]

    applied = await rig.commit(with_peer(rig.bgp, A, description="core", max_prefixes=10))

    assert applied == Applied(2)
    assert rig.speaker.peers[A] is state
    assert state.policy is not None and state.policy.max_prefix == 10
    status = rig.store.get(neighbor_key(A))
    assert status is not None and status.description == "core"
    assert rig.routers[A].connections == 1


async def test_import_change_reapplies_received_routes_without_reset(rig: Rig) -> None:
    only_b = (PrefixFilter(ipaddress.IPv4Network("10.3.0.0/16"), 16, 32),)

    assert await rig.commit(attrs.evolve(rig.bgp, imports=only_b)) == Applied(2)
    assert rig.best() == {ROUTE[B]}

    assert await rig.commit(bgp_section(rig.routers)) == Applied(3)
    assert rig.best() == {ROUTE[A], ROUTE[B]}
    assert [r.connections for r in rig.routers.values()] == [1, 1]
    assert [r.notifications for r in rig.routers.values()] == [[], []]


async def test_global_change_resets_every_session(rig: Rig) -> None:
    new_id = ipaddress.IPv4Address("10.255.0.9")

    assert await rig.commit(attrs.evolve(rig.bgp, router_id=new_id)) == Applied(2)

    await until(lambda: all(r.established == 2 for r in rig.routers.values()), "re-established")
    for router in rig.routers.values():
        assert router.notifications == [(ErrorCode.CEASE, CeaseSubcode.OTHER_CONFIGURATION_CHANGE)]
    for state in rig.speaker.peers.values():
        assert state.runner.config.local_router_id == new_id
    await rig.settled()


async def test_port_that_cannot_be_bound_is_reported_and_the_rest_keeps_running(
    rig: Rig,
) -> None:
    sessions = {address: state.runner.session for address, state in rig.speaker.peers.items()}
    taken = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    async with taken:
        port = taken.socket.getsockname()[1]

        applied = await rig.commit(attrs.evolve(rig.bgp, listen_port=port))

        assert applied.generation == 2
        assert applied.error is not None and f"listen port {port}" in applied.error
        assert rig.speaker.bgp.listen_port == 0  # what runs: still no listener
        # the committer restores the previous section as a new generation
        assert await rig.commit(attrs.evolve(rig.bgp, listen_port=0)) == Applied(3)
    assert {a: s.runner.session for a, s in rig.speaker.peers.items()} == sessions
    assert [r.connections for r in rig.routers.values()] == [1, 1]


async def test_unchanged_generation_touches_nothing(rig: Rig) -> None:
    sessions = {address: state.runner.session for address, state in rig.speaker.peers.items()}

    assert await rig.commit(rig.bgp) == Applied(2)

    assert {a: s.runner.session for a, s in rig.speaker.peers.items()} == sessions
    assert [r.connections for r in rig.routers.values()] == [1, 1]


# --- the plan alone ------------------------------------------------------------------------------


def _section(*peers: BgpPeer, **overrides: Any) -> Bgp:
    values: dict[str, Any] = {"asn": 65100, "router_id": ipaddress.IPv4Address("10.255.0.1")}
    return Bgp(peers=peers, **{**values, **overrides})


def test_plan_sorts_peers_by_what_changed() -> None:
    a, b, c = BgpPeer(A, 65102), BgpPeer(B, 65103), BgpPeer(LOCAL, 65104)
    old = _section(a, b)
    new = _section(attrs.evolve(a, hold_time=30), c, attrs.evolve(b, description="x"))

    steps = plan(old, new)

    assert steps.removed == ()
    assert steps.reset == (attrs.evolve(a, hold_time=30),)
    assert steps.added == (c,)
    assert steps.updated == (attrs.evolve(b, description="x"),)
    assert not steps.reset_all
    assert plan(new, old).removed == (LOCAL,)


def test_plan_resets_all_on_open_settings_only() -> None:
    a = BgpPeer(A, 65102)
    old = _section(a)

    assert plan(old, _section(a, asn=65200)).reset == (a,)
    assert plan(old, _section(a, graceful_restart=GracefulRestart(restart_time=60))).reset_all
    listen = plan(old, _section(a, listen_port=1179))
    assert listen.listen_changed and not listen.reset_all and listen.reset == ()
    assert plan(old, _section(a, install_routes=True)).install_routes_changed
    assert plan(old, _section(a)).empty


# --- a peer's routes leaving ---------------------------------------------------------------------


async def test_flushing_a_peer_drops_its_queued_updates_behind_the_withdrawals() -> None:
    """An UPDATE still queued when the session ends must not put back, after the withdrawals,
    a route of the session that is gone."""
    speaker = BgpSpeaker(_section(BgpPeer(A, ASN[A])), StateStore())
    state = speaker.peers[A]
    info = PeerInfo(A, A, ASN[A], True)
    state.info, state.adj_in = info, AdjRibIn(info)
    state.policy = PeerImport(ImportPolicy(65100, (PrefixFilter.exact(ROUTE[A]),)), info)
    announcement = FakeRouter(A)._announcement()
    result = state.policy.filter(state.adj_in.apply(announcement))
    speaker.loc_rib.apply(result.changes, info)
    state.backlog.append(announcement)  # received, not yet through the RIB

    speaker._flush_peer_routes(state)

    assert list(state.backlog) == [RouteChange(ROUTE[A], result.changes[0].new, None)]
