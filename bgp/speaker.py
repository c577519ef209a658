"""The BGP speaker service: peers, listener, RIBs, adverts that follow the node's intent.

A thin Trio shell: sessions are sans-IO (`bgp.session`), tables are pure (`bgp.rib`,
`bgp.policy`, `bgp.export`); this module moves data between them, the network and the state
store. Route ingestion runs in bounded slices with checkpoints so keepalives, HA adverts and
the dashboard stay on time while a full table arrives.

The speaker follows the running config (`each_config`): each generation's ``bgp`` section is
compared with the one it runs (`bgp.reconfig.plan`) and only what changed is touched — a removed
peer gets a Cease "Peer De-configured" and its routes leave the Loc-RIB, a peer whose session
settings changed is reset alone, new import filters are re-applied to the routes already held,
and the listener or the kernel route sync are replaced on their own. `Applied` says when a
generation is in force (with an error when part of it could not be applied; what runs is then
still a consistent section, which the next generation is compared with).
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from functools import partial

import attrs
import trio

from appliance.config.model import Bgp, BgpPeer
from appliance.heap import HeapFreezer
from appliance.intent import INTENT, NodeIntent
from appliance.keys import Applied, applied_key, each_config
from appliance.state import StateStore
from appliance.structlog import get_logger

from .codec.attributes import PathAttributes
from .codec.update import Update
from .decision import DecisionOptions
from .errors import CeaseSubcode
from .export import AdjRibOut, ExportSettings, export_routes
from .fsm import (
    EndOfRibReceived,
    Event,
    NotificationReceived,
    PeerGracefulRestart,
    RouteRefreshReceived,
    SessionDown,
    SessionEstablished,
    State,
    StateChanged,
    UpdateReceived,
)
from .kernel_routes import desired_routes, flush, sync_routes
from .peer import PeerRunner
from .policy import ImportPolicy, PeerImport
from .reconfig import BgpPlan, plan
from .rib import AdjRibIn, LocRib, PeerInfo, Route, RouteChange
from .session import BgpSession, GracefulRestartConfig, SessionConfig
from .sockopts import IPAddress, read_password_file
from .status import BGP_CONTROL, BGP_RIB_VIEW, NeighborStatus, neighbor_key
from .transport import PeerTransport, open_listener, remote_address
from .types import IPV4_UNICAST, IPV6_UNICAST, Family, Prefix

log = get_logger("bgp")

#: Prefixes applied to the RIB between two checkpoints while a table arrives.
INGEST_SLICE = 200
#: UPDATEs queued per peer before its reader stops reading (TCP back-pressure).
INGEST_BACKLOG = 64
STATUS_PERIOD_S = 1.0
KERNEL_SYNC_DEBOUNCE_S = 0.2
STOP_FLUSH_TIMEOUT_S = 2.0
KERNEL_FIRST_SYNC_WAIT_S = 10.0
#: The supervisor's name of this service: where its `Applied` is published.
SERVICE = "bgp"


@attrs.define(eq=False)
class _Task:
    """A task the speaker starts and stops on its own (a peer, the listener, the kernel sync)."""

    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    done: trio.Event = attrs.field(factory=trio.Event)

    async def stop(self) -> None:
        """Cancel the task and wait until it has finished (its cleanup included)."""
        self.scope.cancel()
        await self.done.wait()


@attrs.frozen(eq=False)
class _Reimport:
    """A backlog item: judge the peer's Adj-RIB-In again with ``policy`` (queued behind the
    routes already received, so the Loc-RIB and the policy's counts stay in step)."""

    policy: ImportPolicy
    done: trio.Event = attrs.field(factory=trio.Event)


#: Per peer, what the listening socket carries for it: (address, TCP-MD5 key, GTSM).
_ListenerOptions = frozenset[tuple[IPAddress, bytes | None, bool]]


@attrs.define(eq=False)
class _Listening(_Task):
    """The listening socket's task and what the socket was opened with."""

    port: int = 0
    options: _ListenerOptions = frozenset()


def listener_options(transports: Iterable[PeerTransport]) -> _ListenerOptions:
    """The per-peer options a listening socket holds (accepted connections inherit them)."""
    return frozenset((t.address, t.md5_key, t.gtsm) for t in transports if t.md5_key or t.gtsm)


@attrs.define(eq=False)
class PeerState:
    """The speaker's view of one configured peer."""

    config: BgpPeer
    runner: PeerRunner
    policy: PeerImport | None = None
    info: PeerInfo | None = None
    adj_in: AdjRibIn | None = None
    rib_out: AdjRibOut | None = None
    backlog: deque[Update | RouteChange | Family | _Reimport] = attrs.field(factory=deque)
    backlog_wake: trio.Event = attrs.field(factory=trio.Event)
    room: trio.Event = attrs.field(factory=trio.Event)
    drained: trio.Event = attrs.field(factory=trio.Event)  # set when the backlog runs empty
    task: _Task = attrs.field(factory=_Task)  # the runner and the ingestion
    nursery: trio.Nursery | None = None  # where its accepted connections are served
    established_at: float | None = None
    established_count: int = 0
    updates_received: int = 0
    updates_sent: int = 0
    last_error: str | None = None
    peer_gr: PeerGracefulRestart | None = None
    stale_deadline: float = math.inf
    peer_router_id: str | None = None
    hold_time: int | None = None
    four_octet_as: bool | None = None


def session_config(bgp: Bgp, peer: BgpPeer, restarting: bool) -> SessionConfig:
    gr = bgp.graceful_restart
    return SessionConfig(
        local_asn=bgp.asn,
        local_router_id=bgp.router_id,
        peer_address=peer.address,
        peer_asn=peer.asn,
        hold_time=peer.hold_time,
        passive=peer.passive,
        graceful_restart=(
            GracefulRestartConfig(
                restart_time=gr.restart_time, restarting=restarting, forwarding_preserved=True
            )
            if gr.enabled
            else None
        ),
    )


def peer_transport(peer: BgpPeer) -> PeerTransport:
    key = read_password_file(str(peer.password_file)) if peer.password_file else None
    return PeerTransport(
        address=peer.address,
        port=peer.port,
        md5_key=key,
        gtsm=peer.ttl_security,
        ttl=peer.multihop_ttl,
    )


def split_update(update: Update, size: int) -> Iterator[Update]:
    """Cut an UPDATE into UPDATEs of at most `size` prefixes each (same attribute object, so
    the RIB still shares one path among them). Treat-as-withdraw UPDATEs stay whole."""
    reach, unreach = update.mp_reach, update.mp_unreach
    count = len(update.withdrawn) + len(update.nlri)
    count += len(reach.nlri) if reach else 0
    count += len(unreach.withdrawn) if unreach else 0
    if count <= size or update.treat_as_withdraw:
        yield update
        return
    for i in range(0, len(update.withdrawn), size):
        yield Update(withdrawn=update.withdrawn[i : i + size])
    if unreach is not None:
        for i in range(0, len(unreach.withdrawn), size):
            yield Update(
                mp_unreach=attrs.evolve(unreach, withdrawn=unreach.withdrawn[i : i + size])
            )
    bare = attrs.evolve(update, withdrawn=(), nlri=(), mp_reach=None, mp_unreach=None)
    for i in range(0, len(update.nlri), size):
        yield attrs.evolve(bare, nlri=update.nlri[i : i + size])
    if reach is not None:
        for i in range(0, len(reach.nlri), size):
            yield attrs.evolve(bare, mp_reach=attrs.evolve(reach, nlri=reach.nlri[i : i + size]))


class BgpSpeaker:
    def __init__(
        self, bgp: Bgp, store: StateStore, *, restarting: bool = False, seed: int | None = None
    ) -> None:
        #: the section in force (after a partly failed change: what actually runs)
        self.bgp = bgp
        self._store = store
        self._rng = random.Random(seed)
        self._import = ImportPolicy.from_config(bgp)
        self.loc_rib = LocRib(DecisionOptions())
        self.peers: dict[IPAddress, PeerState] = {}
        for peer in bgp.peers:
            self.peers[peer.address] = self._peer_state(peer, peer_transport(peer), restarting)
        self._nursery: trio.Nursery | None = None
        self._listener: _Listening | None = None
        self._kernel: _Task | None = None
        self._kernel_dirty = trio.Event()
        self._kernel_ready = trio.Event()  # first End-of-RIB seen (or a bounded wait passed)
        self._heap = HeapFreezer()

    def _peer_state(self, peer: BgpPeer, transport: PeerTransport, restarting: bool) -> PeerState:
        config = session_config(self.bgp, peer, restarting)
        return PeerState(peer, PeerRunner(config, transport, self, self._rng))

    # --- service ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled. The sessions run in a shielded scope so that, on cancel, a
        speaker without graceful restart can still send its Cease before the sockets close."""
        self._store.publish(BGP_RIB_VIEW, self)
        self._store.publish(BGP_CONTROL, self)
        sessions = trio.CancelScope(shield=True)
        async with trio.open_nursery() as outer:
            await outer.start(self._serve, sessions)
            outer.start_soon(self._follow_config)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    if not self.bgp.graceful_restart.enabled:
                        with trio.move_on_after(STOP_FLUSH_TIMEOUT_S):
                            await self.shutdown("triolb stopping")
                    sessions.cancel()

    async def _serve(
        self, sessions: trio.CancelScope, *, task_status: trio.TaskStatus[None]
    ) -> None:
        with sessions:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for state in self.peers.values():
                    await self._start_peer(state)
                await self._update_listener()  # at start a port that cannot be bound is fatal
                await self._update_kernel_sync()
                nursery.start_soon(self._follow_intent)
                nursery.start_soon(self._status_loop)
                log.info(
                    "bgp_started",
                    asn=self.bgp.asn,
                    router_id=str(self.bgp.router_id),
                    peers=[str(a) for a in self.peers],
                    listen_port=self.bgp.listen_port,
                )
                task_status.started()

    async def _supervise(
        self,
        task: _Task,
        body: Callable[..., Awaitable[object]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run ``body`` (started with ``nursery.start``) under ``task``'s cancel scope, so it
        can be stopped on its own; ``task.done`` is set once it is over."""
        try:
            with task.scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(body)
                    task_status.started()
        finally:
            task.done.set()

    async def _start_peer(self, state: PeerState) -> None:
        assert self._nursery is not None
        await self._nursery.start(self._supervise, state.task, partial(self._run_peer, state))
        self._publish(state)

    async def _run_peer(self, state: PeerState, *, task_status: trio.TaskStatus[None]) -> None:
        """A peer's runner, its ingestion and its accepted connections."""
        async with trio.open_nursery() as nursery:
            state.nursery = nursery
            await nursery.start(state.runner.run)
            nursery.start_soon(self._ingest, state)
            task_status.started()

    async def shutdown(self, communication: str | None = None) -> None:
        """Cease every session (administrative shutdown with a communication) and flush."""
        for state in self.peers.values():
            state.runner.shutdown(communication)
        for state in self.peers.values():
            await state.runner.flush()

    # --- following the config -----------------------------------------------------------------

    async def _follow_config(self) -> None:
        """Apply each generation of the running config and answer with `Applied`."""
        async for generation, cfg in each_config(self._store):
            errors = [] if cfg.bgp is None else await self.reconfigure(cfg.bgp)
            # (no section: the daemon stops this service; nothing to change until then)
            error = "; ".join(errors) or None
            report = log.info if error is None else log.error
            report("bgp_config_applied", generation=generation, error=error)
            self._store.publish(applied_key(SERVICE), Applied(generation, error))

    async def reconfigure(self, new: Bgp) -> list[str]:
        """Go from the section in force to ``new``, touching only what changed; returns what
        could not be applied (``self.bgp`` then says what runs instead)."""
        steps = plan(self.bgp, new)
        if steps.empty:
            self.bgp = attrs.evolve(new, peers=self.bgp.peers)  # e.g. advert attributes
            return []
        log.info(
            "bgp_reconfigure",
            removed=[str(a) for a in steps.removed],
            reset=[str(p.address) for p in steps.reset],
            added=[str(p.address) for p in steps.added],
            updated=[str(p.address) for p in steps.updated],
            reset_all=steps.reset_all,
            imports_changed=steps.imports_changed,
        )
        errors: list[str] = []
        transports = await self._read_transports((*steps.reset, *steps.added), errors)
        old = self.bgp
        self.bgp = attrs.evolve(
            new, peers=old.peers, listen_port=old.listen_port, install_routes=old.install_routes
        )
        self._import = ImportPolicy.from_config(new)
        await self._apply_peers(steps, transports)
        self._update_peers_in_place(steps.updated)
        if steps.imports_changed and not steps.reset_all:
            await self._reimport_all()
        order = {peer.address: index for index, peer in enumerate(new.peers)}
        running = sorted(self.peers.values(), key=lambda s: order.get(s.config.address, 0))
        self.bgp = attrs.evolve(self.bgp, peers=tuple(state.config for state in running))
        await self._reconfigure_listener(new.listen_port, errors)
        await self._reconfigure_kernel_sync(new.install_routes, errors)
        return errors

    async def _read_transports(
        self, peers: Iterable[BgpPeer], errors: list[str]
    ) -> dict[IPAddress, PeerTransport]:
        """The new peers' transports (their password files read off the event loop); a peer
        whose file cannot be read is reported and left as it runs."""
        transports: dict[IPAddress, PeerTransport] = {}
        for peer in peers:
            try:
                transports[peer.address] = await trio.to_thread.run_sync(peer_transport, peer)
            except (OSError, ValueError) as exc:
                errors.append(f"peer {peer.address}: {exc}")
        return transports

    async def _apply_peers(
        self, steps: BgpPlan, transports: dict[IPAddress, PeerTransport]
    ) -> None:
        """Close removed and changed sessions (all at once), then start the new ones. A changed
        peer without its new transport keeps running as it was, unless every session must be
        rebuilt (its old session would carry the old OPEN settings): then it stops."""
        closing = [
            (self.peers[address], CeaseSubcode.PEER_DE_CONFIGURED) for address in steps.removed
        ]
        starting = [peer for peer in (*steps.reset, *steps.added) if peer.address in transports]
        for peer in steps.reset:
            if peer.address in transports or steps.reset_all:
                closing.append((self.peers[peer.address], CeaseSubcode.OTHER_CONFIGURATION_CHANGE))
        async with trio.open_nursery() as nursery:
            for state, subcode in closing:
                nursery.start_soon(self._remove_peer, state, subcode)
        for peer in starting:
            state = self._peer_state(peer, transports[peer.address], restarting=False)
            self.peers[peer.address] = state
            await self._start_peer(state)

    async def _remove_peer(self, state: PeerState, subcode: CeaseSubcode) -> None:
        """Close a peer's sessions with a Cease (``subcode``), take its routes out of the
        Loc-RIB (and so the kernel), stop its tasks and withdraw its status."""
        address = state.config.address
        runner = state.runner
        runner.admin_down = True  # refuse its connections while it goes
        now = trio.current_time()
        for session in runner.connections.sessions:
            session.cease(now, subcode)
        runner.pump()
        self._flush_peer_routes(state)  # also the stale routes of a restarting peer
        state.stale_deadline = math.inf
        await runner.flush()
        await self._drain(state)
        await state.task.stop()
        if self.peers.get(address) is state:
            del self.peers[address]
            self._store.remove(neighbor_key(address))
        log.info("bgp_peer_removed", peer=str(address), cease_subcode=subcode.name)

    def _update_peers_in_place(self, peers: Iterable[BgpPeer]) -> None:
        """Description and prefix limit: no session change (a lower limit already exceeded
        closes the session as a new route would)."""
        for peer in peers:
            state = self.peers[peer.address]
            state.config = peer
            if state.policy is not None:
                state.policy.max_prefix = peer.max_prefixes
                if state.policy.limit_exceeded:
                    self._cease_over_limit(state)
            self._publish(state)

    async def _reimport_all(self) -> None:
        """Re-judge every peer's received routes with the new import policy, in order with
        the routes still queued; waits until done."""
        pending: list[_Reimport] = []
        for state in self.peers.values():
            if state.policy is not None and state.policy.policy != self._import:
                item = _Reimport(self._import)
                self._enqueue(state, item)
                pending.append(item)
        for item in pending:
            await item.done.wait()

    def _reimport(self, state: PeerState, policy: ImportPolicy) -> None:
        if state.policy is None or state.info is None:
            return
        routes = state.adj_in.routes() if state.adj_in is not None else iter(())
        result = state.policy.reevaluate(policy, routes)
        if self.loc_rib.apply(result.changes, state.info):
            self._kernel_dirty.set()
        log.info(
            "bgp_import_reapplied",
            peer=str(state.config.address),
            changed=len(result.changes),
            accepted=state.policy.accepted,
        )
        if result.limit_exceeded:
            self._cease_over_limit(state)

    async def _drain(self, state: PeerState) -> None:
        """Wait until the peer's backlog has gone through the RIB."""
        while state.backlog:
            state.drained = trio.Event()
            await state.drained.wait()

    # --- listener -------------------------------------------------------------------------------

    async def _reconfigure_listener(self, port: int, errors: list[str]) -> None:
        self.bgp = attrs.evolve(self.bgp, listen_port=port)
        try:
            await self._update_listener()
        except OSError as exc:
            errors.append(f"listen port {port}: {exc}")
            self.bgp = attrs.evolve(
                self.bgp, listen_port=self._listener.port if self._listener is not None else 0
            )

    async def _update_listener(self) -> None:
        """Make the listening socket match ``self.bgp.listen_port`` and the peers' TCP-MD5
        keys and GTSM (options of the listening socket). A new port is bound before the old
        socket closes, so a failure (OSError) leaves the old one serving; the same port with
        other options must be closed first (it cannot be bound twice)."""
        assert self._nursery is not None
        port = self.bgp.listen_port
        transports = [state.runner.transport for state in self.peers.values()]
        options = listener_options(transports)
        current = self._listener
        if current is not None and (current.port, current.options) == (port, options):
            return
        if port == 0 or (current is not None and current.port == port):
            await self._close_listener()
        if port == 0:
            return
        listener = await open_listener(port, transports)
        await self._close_listener()
        record = _Listening(port=port, options=options)

        async def serve(*, task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            try:
                await self._accept(listener)
            finally:
                with trio.CancelScope(shield=True):
                    await listener.aclose()

        self._listener = record
        await self._nursery.start(self._supervise, record, serve)
        log.info("bgp_listening", port=port)

    async def _close_listener(self) -> None:
        record, self._listener = self._listener, None
        if record is not None:
            await record.stop()

    # --- kernel route sync (on or off) ------------------------------------------------------------

    async def _reconfigure_kernel_sync(self, install_routes: bool, errors: list[str]) -> None:
        self.bgp = attrs.evolve(self.bgp, install_routes=install_routes)
        try:
            await self._update_kernel_sync()
        except OSError as exc:
            errors.append(f"install_routes: {exc}")

    async def _update_kernel_sync(self) -> None:
        """Start the kernel route sync, or stop it and remove the routes it installed."""
        assert self._nursery is not None
        if self.bgp.install_routes and self._kernel is None:
            self._kernel = _Task()
            await self._nursery.start(self._supervise, self._kernel, self._kernel_sync)
        elif not self.bgp.install_routes and self._kernel is not None:
            task, self._kernel = self._kernel, None
            await task.stop()
            removed = await trio.to_thread.run_sync(flush)
            log.info("bgp_kernel_routes_flushed", removed=removed)

    # --- operator actions (BgpControl) ---------------------------------------------------------

    def shutdown_peer(self, address: IPAddress, communication: str | None) -> bool:
        """Administrative shutdown of one session (Cease/2 with an RFC 9003 communication)."""
        state = self.peers.get(address)
        if state is None:
            return False
        log.info("bgp_admin_shutdown", peer=str(address), communication=communication)
        state.runner.shutdown(communication)
        self._publish(state)
        return True

    def enable_peer(self, address: IPAddress) -> bool:
        state = self.peers.get(address)
        if state is None:
            return False
        log.info("bgp_admin_enable", peer=str(address))
        state.runner.restart()
        self._publish(state)
        return True

    def refresh_peer(self, address: IPAddress) -> bool:
        """Ask the peer to send its routes again (RFC 2918), e.g. after an import change."""
        state = self.peers.get(address)
        if state is None or state.runner.session.state is not State.ESTABLISHED:
            return False
        negotiated = state.runner.session.negotiated
        if negotiated is None or not negotiated.route_refresh:
            return False
        now = trio.current_time()
        for family in sorted(negotiated.families):
            state.runner.session.send_route_refresh(family[0], family[1], 0, now)
        state.runner.pump()
        return True

    async def _accept(self, listener: trio.SocketListener) -> None:
        while True:
            stream = await listener.accept()
            try:
                address = remote_address(stream)
            except OSError:
                await stream.aclose()
                continue
            state = self.peers.get(address)
            if state is None or state.nursery is None:
                log.warning("bgp_unknown_peer_refused", address=str(address))
                await stream.aclose()
                continue
            state.nursery.start_soon(state.runner.accept, stream)

    # --- session events (synchronous, from PeerRunner.pump) ---------------------------------

    def _state_of(self, runner: PeerRunner) -> PeerState | None:
        """The peer a runner serves; None for the runner of a peer being removed or reset."""
        state = self.peers.get(runner.config.peer_address)
        return state if state is not None and state.runner is runner else None

    def session_event(self, runner: PeerRunner, session: BgpSession, event: Event) -> None:
        state = self._state_of(runner)
        if state is None:
            return
        if isinstance(event, UpdateReceived):
            state.updates_received += 1
            self._enqueue(state, event.update)
        elif isinstance(event, EndOfRibReceived):
            self._enqueue(state, event.family)
        elif isinstance(event, SessionEstablished):
            self._established(state, session, event)
        elif isinstance(event, SessionDown):
            self._down(state, event)
        elif isinstance(event, RouteRefreshReceived):
            if state.rib_out is not None:
                state.updates_sent += runner.send_updates(state.rib_out.full())
        elif isinstance(event, NotificationReceived):
            state.last_error = f"received {event.code}/{event.subcode}" + (
                f": {event.communication}" if event.communication else ""
            )
        if isinstance(event, StateChanged | SessionEstablished | SessionDown):
            self._publish(state)

    def _established(
        self, state: PeerState, session: BgpSession, event: SessionEstablished
    ) -> None:
        negotiated = event.negotiated
        info = PeerInfo(
            state.config.address, event.peer_open.identifier, event.peer_open.asn, negotiated.ebgp
        )
        if state.adj_in is not None and state.info != info:
            # a different speaker behind the address: its kept (stale) routes go first
            self._flush_peer_routes(state)
            state.adj_in = None
        if state.adj_in is None:
            state.adj_in = AdjRibIn(info)
        state.info = info
        state.policy = PeerImport(self._import, info, state.config.max_prefixes)
        state.established_at = time.time()
        state.established_count += 1
        state.peer_gr = event.graceful_restart
        state.peer_router_id = str(event.peer_open.identifier)
        state.hold_time = negotiated.hold_time
        state.four_octet_as = negotiated.four_octet_as
        local = state.runner.local_address()
        settings = ExportSettings(
            negotiated,
            next_hop=local if local is not None and local.version == 4 else None,
            next_hop6=local if local is not None and local.version == 6 else None,
        )
        state.rib_out = AdjRibOut(settings)
        state.rib_out.diff(self._desired(settings))
        state.updates_sent += state.runner.send_updates(state.rib_out.full())

    def _down(self, state: PeerState, event: SessionDown) -> None:
        state.rib_out = None
        state.established_at = None
        if event.error is not None:
            state.last_error = str(event.error)
        elif event.reason:
            state.last_error = event.reason
        if not event.was_established or state.adj_in is None:
            return
        gr = state.peer_gr
        if gr is not None and event.error is None and gr.families:
            # RFC 4724 helper: keep its routes as stale until End-of-RIB or the restart time
            for family in gr.families:
                state.adj_in.mark_stale(family)
            state.stale_deadline = trio.current_time() + gr.restart_time
            log.info(
                "bgp_peer_restarting", peer=str(state.config.address), restart_time=gr.restart_time
            )
            state.backlog_wake.set()
            return
        self._flush_peer_routes(state)

    def _flush_peer_routes(self, state: PeerState) -> None:
        """Withdraw all of a peer's routes from the Loc-RIB (through its backlog). UPDATEs and
        End-of-RIBs still queued are dropped: applied after the clear they would put back
        routes of a session that is gone; queued withdrawals (and re-imports) stay."""
        if state.adj_in is None:
            return
        kept = [item for item in state.backlog if isinstance(item, RouteChange | _Reimport)]
        state.backlog.clear()
        state.backlog.extend(kept)
        self._enqueue_many(state, state.adj_in.clear())
        state.room.set()

    def _enqueue(self, state: PeerState, item: Update | RouteChange | Family | _Reimport) -> None:
        state.backlog.append(item)
        state.backlog_wake.set()

    def _enqueue_many(self, state: PeerState, changes: Iterable[RouteChange]) -> None:
        state.backlog.extend(changes)
        state.backlog_wake.set()

    # --- ingestion (async, sliced) ----------------------------------------------------------

    async def wait_for_room(self, runner: PeerRunner) -> None:
        """Called by a peer's reader before each read: back-pressure while the RIB catches up."""
        state = self._state_of(runner)
        while state is not None and len(state.backlog) > INGEST_BACKLOG:
            state.room = trio.Event()
            await state.room.wait()

    async def _ingest(self, state: PeerState) -> None:
        while True:
            if not state.backlog:
                state.room.set()
                state.drained.set()
                state.backlog_wake = trio.Event()
                with trio.move_on_at(state.stale_deadline):
                    await state.backlog_wake.wait()
                if trio.current_time() >= state.stale_deadline:
                    self._sweep_all_stale(state)
                continue
            item = state.backlog.popleft()
            if len(state.backlog) <= INGEST_BACKLOG // 2:
                state.room.set()
            self._heap.maybe_freeze(trio.current_time())
            if isinstance(item, Update):
                await self._apply_update(state, item)
            elif isinstance(item, RouteChange):
                await self._apply_changes(state, [item, *self._take_changes(state)])
            elif isinstance(item, _Reimport):
                self._reimport(state, item.policy)
                item.done.set()
            else:
                self._end_of_rib(state, item)
            await trio.lowlevel.checkpoint()

    def _take_changes(self, state: PeerState) -> Iterator[RouteChange]:
        taken = 0
        while state.backlog and taken < INGEST_SLICE and isinstance(state.backlog[0], RouteChange):
            item = state.backlog.popleft()
            assert isinstance(item, RouteChange)
            taken += 1
            yield item

    async def _apply_update(self, state: PeerState, update: Update) -> None:
        for part in split_update(update, INGEST_SLICE):
            if state.adj_in is None:
                return
            await self._apply_changes(state, state.adj_in.apply(part))

    async def _apply_changes(self, state: PeerState, changes: Iterable[RouteChange]) -> None:
        if state.policy is None or state.info is None:
            return
        result = state.policy.filter(changes)
        if self.loc_rib.apply(result.changes, state.info):
            self._kernel_dirty.set()
        if result.limit_exceeded:
            self._cease_over_limit(state)
        await trio.lowlevel.checkpoint()

    def _cease_over_limit(self, state: PeerState) -> None:
        log.warning(
            "bgp_max_prefixes", peer=str(state.config.address), limit=state.config.max_prefixes
        )
        state.runner.session.cease(
            trio.current_time(), CeaseSubcode.MAXIMUM_NUMBER_OF_PREFIXES_REACHED
        )
        state.runner.pump()

    def _end_of_rib(self, state: PeerState, family: Family) -> None:
        self._kernel_ready.set()
        if state.adj_in is not None and state.adj_in.stale_count(family):
            self._enqueue_many(state, state.adj_in.sweep_stale(family))
        adj = state.adj_in
        if adj is None or not any(adj.stale_count(f) for f in (IPV4_UNICAST, IPV6_UNICAST)):
            state.stale_deadline = math.inf

    def _sweep_all_stale(self, state: PeerState) -> None:
        state.stale_deadline = math.inf
        if state.adj_in is None:
            return
        for family in (IPV4_UNICAST, IPV6_UNICAST):
            if state.adj_in.stale_count(family):
                log.info(
                    "bgp_stale_routes_removed",
                    peer=str(state.config.address),
                    count=state.adj_in.stale_count(family),
                )
                self._enqueue_many(state, state.adj_in.sweep_stale(family))

    # --- kernel routes ------------------------------------------------------------------------

    async def _kernel_sync(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the kernel's triolb routes equal to the Loc-RIB's best (multipath) routes."""
        task_status.started()
        with trio.move_on_after(KERNEL_FIRST_SYNC_WAIT_S):
            await self._kernel_ready.wait()  # don't flush installed routes before we know
        while True:
            desired = desired_routes(self.loc_rib.selections())
            changes = await trio.to_thread.run_sync(sync_routes, desired)
            if changes or changes.failed:
                log.info(
                    "bgp_kernel_routes",
                    added=len(changes.added),
                    replaced=len(changes.replaced),
                    removed=len(changes.removed),
                    failed=len(changes.failed),
                    conflicts=len(changes.conflicts),
                )
            self._kernel_dirty = trio.Event()
            await self._kernel_dirty.wait()
            await trio.sleep(KERNEL_SYNC_DEBOUNCE_S)

    # --- export -------------------------------------------------------------------------------

    def _desired(self, settings: ExportSettings) -> dict[Prefix, PathAttributes]:
        intent = self._store.get(INTENT)
        adverts = intent.adverts if intent is not None else ()
        return export_routes(adverts, settings)

    async def _follow_intent(self) -> None:
        seen: NodeIntent | None = None
        version = -1
        while True:
            version = await self._store.wait_changed(version)
            intent = self._store.get(INTENT)
            if intent is seen:
                continue
            seen = intent
            for state in self.peers.values():
                if state.rib_out is not None:
                    updates = state.rib_out.diff(self._desired(state.rib_out.settings))
                    if updates:
                        state.updates_sent += state.runner.send_updates(updates)
                        log.info(
                            "bgp_adverts_changed",
                            peer=str(state.config.address),
                            updates=len(updates),
                        )

    # --- status -------------------------------------------------------------------------------

    async def _status_loop(self) -> None:
        while True:
            await trio.sleep(STATUS_PERIOD_S)
            for state in self.peers.values():
                self._publish(state)

    def _publish(self, state: PeerState) -> None:
        adj = state.adj_in
        received = len(adj) if adj is not None else 0
        self._store.publish(
            neighbor_key(state.config.address),
            NeighborStatus(
                address=state.config.address,
                asn=state.config.asn,
                description=state.config.description,
                state=state.runner.session.state.value,
                established_at=state.established_at,
                established_count=state.established_count,
                prefixes_received=received,
                prefixes_accepted=state.policy.accepted if state.policy else 0,
                prefixes_advertised=len(state.rib_out) if state.rib_out is not None else 0,
                updates_received=state.updates_received,
                updates_sent=state.updates_sent,
                last_error=state.last_error,
                local_address=state.runner.local_address(),
                peer_router_id=state.peer_router_id,
                hold_time=state.hold_time,
                four_octet_as=state.four_octet_as,
                graceful_restart=state.peer_gr is not None,
                keepalive_gap_max_s=state.runner.session.send_gap_max
                if state.established_at is not None
                else None,
            ),
        )

    # --- RibView ------------------------------------------------------------------------------

    def received(self, peer: IPAddress | None = None) -> Iterator[Route]:
        for address, state in self.peers.items():
            if (peer is None or peer == address) and state.adj_in is not None:
                yield from state.adj_in.routes()

    def advertised(
        self, peer: IPAddress | None = None
    ) -> Iterator[tuple[IPAddress, Prefix, PathAttributes]]:
        for address, state in self.peers.items():
            if (peer is None or peer == address) and state.rib_out is not None:
                for prefix, attributes in state.rib_out.routes.items():
                    yield address, prefix, attributes

    def best(self) -> Iterator[Route]:
        return self.loc_rib.routes()
