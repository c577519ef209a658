"""The Trio shell around the BGP sessions of one peer: TCP in and out, timers, collisions.

It only moves bytes and sleeps until the sessions' next deadline. What the sessions report
(established, updates, down, …) goes to a `PeerHandler` — the speaker — which owns the RIBs.
"""

from __future__ import annotations

import math
import random
from typing import Protocol

import attrs
import trio

from appliance.structlog import get_logger

from .codec.update import Update
from .collision import PeerConnections
from .fsm import (
    CloseRequested,
    ConnectRequested,
    Event,
    NotificationReceived,
    ProtocolWarning,
    SessionDown,
    SessionEstablished,
    State,
    StateChanged,
)
from .session import BgpSession, SessionConfig
from .sockopts import IPAddress
from .transport import PeerTransport, connect_peer, local_address

log = get_logger("bgp")

READ_CHUNK = 4 * 1024
CONNECT_TIMEOUT_S = 5.0
CLOSE_FLUSH_TIMEOUT_S = 1.0


class PeerHandler(Protocol):
    """What the speaker does with a peer's session events (the current session only)."""

    def session_event(self, runner: PeerRunner, session: BgpSession, event: Event) -> None: ...

    async def wait_for_room(self, runner: PeerRunner) -> None:
        """Return when the handler can take more input (back-pressure on reading)."""


@attrs.define(eq=False)
class _Link:
    """One TCP connection carrying one session."""

    session: BgpSession
    stream: trio.SocketStream
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    outbuf: bytearray = attrs.field(factory=bytearray)
    wake: trio.Event = attrs.field(factory=trio.Event)
    closing: bool = False


class PeerRunner:
    def __init__(
        self,
        config: SessionConfig,
        transport: PeerTransport,
        handler: PeerHandler,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.transport = transport
        self._handler = handler
        self._rng = rng or random.Random()
        self.connections = PeerConnections(current=BgpSession(config, rng=self._rng))
        self._links: dict[BgpSession, _Link] = {}
        self._connecting: dict[BgpSession, trio.CancelScope] = {}
        self._timer_wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        #: set by an administrative shutdown: incoming connections are refused until restart
        self.admin_down = False

    @property
    def session(self) -> BgpSession:
        current = self.connections.current
        assert current is not None
        return current

    def local_address(self) -> IPAddress | None:
        link = self._links.get(self.session)
        return None if link is None else local_address(link.stream)

    # --- task -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.session.start(trio.current_time())
            self.pump()
            nursery.start_soon(self._timer_loop)
            task_status.started()

    async def _timer_loop(self) -> None:
        while True:
            deadlines = [d for s in self.connections.sessions if (d := s.get_timer()) is not None]
            deadline = min(deadlines, default=math.inf)
            with trio.move_on_at(deadline):
                await self._timer_wake.wait()
            now = trio.current_time()
            for session in self.connections.sessions:
                timer = session.get_timer()
                if timer is not None and timer <= now:
                    session.handle_timer(now)
            self.pump()
            # re-armed after our own pump: only other tasks' pumps (or a deadline) wake us
            self._timer_wake = trio.Event()

    # --- the one place session output is handled --------------------------------------------

    def pump(self) -> None:
        """Route every session's events and bytes; settle collisions; re-arm the timer."""
        now = trio.current_time()
        loser = self.connections.resolve(now)
        sessions = self.connections.sessions
        if loser is not None:
            sessions = [*sessions, loser]
        for session in sessions:
            for event in session.events():
                self._on_event(session, event)
            data = session.data_to_send()
            link = self._links.get(session)
            if data and link is not None and not link.scope.cancel_called:
                link.outbuf += data
                link.wake.set()
        self._timer_wake.set()

    def _on_event(self, session: BgpSession, event: Event) -> None:
        if isinstance(event, ConnectRequested):
            self._start_connect(session)
        elif isinstance(event, CloseRequested):
            self._close(session)
        if session is self.connections.current:
            self._log(session, event)
            self._handler.session_event(self, session, event)

    def _log(self, session: BgpSession, event: Event) -> None:
        peer = str(self.config.peer_address)
        if isinstance(event, StateChanged):
            log.debug("bgp_state", peer=peer, old=event.old.value, new=event.new.value)
        elif isinstance(event, SessionEstablished):
            log.info(
                "bgp_established",
                peer=peer,
                peer_asn=event.peer_open.asn,
                hold_time=event.negotiated.hold_time,
            )
        elif isinstance(event, SessionDown):
            log.info("bgp_down", peer=peer, reason=event.reason)
        elif isinstance(event, NotificationReceived):
            log.warning(
                "bgp_notification_received",
                peer=peer,
                code=event.code,
                subcode=event.subcode,
                communication=event.communication,
            )
        elif isinstance(event, ProtocolWarning):
            log.warning("bgp_protocol_warning", peer=peer, error=str(event.error))

    # --- connections --------------------------------------------------------------------------

    def _start_connect(self, session: BgpSession) -> None:
        if session in self._connecting or session in self._links or self._nursery is None:
            return
        scope = trio.CancelScope()
        self._connecting[session] = scope
        self._nursery.start_soon(self._connect, session, scope)

    async def _connect(self, session: BgpSession, scope: trio.CancelScope) -> None:
        stream: trio.SocketStream | None = None
        try:
            with scope, trio.move_on_after(CONNECT_TIMEOUT_S):
                stream = await connect_peer(self.transport)
        except OSError as exc:
            log.debug("bgp_connect_failed", peer=str(self.config.peer_address), error=str(exc))
        finally:
            self._connecting.pop(session, None)
        if stream is None:
            if not scope.cancel_called:
                session.connection_failed(trio.current_time())
                self.pump()
            return
        if session in self._links or session not in self.connections.sessions:
            await stream.aclose()
            return
        await self._serve_link(session, stream, initiated_locally=True)

    async def accept(self, stream: trio.SocketStream) -> None:
        """An incoming connection from this peer (called in its own task by the speaker)."""
        now = trio.current_time()
        current = self.session
        if self.admin_down:
            log.info(
                "bgp_connection_refused",
                peer=str(self.config.peer_address),
                reason="administratively down",
            )
            await stream.aclose()
            return
        if current not in self._links and current.state in (State.CONNECT, State.ACTIVE):
            scope = self._connecting.pop(current, None)
            if scope is not None:
                scope.cancel()
            await self._serve_link(current, stream, initiated_locally=False)
            return
        contender = BgpSession(attrs.evolve(self.config, passive=True), rng=self._rng)
        contender.start(now, passive=True)
        if not self.connections.accept(contender, now):
            # refused: the contender holds a Cease for the new connection
            await self._serve_link(contender, stream, initiated_locally=False, refused=True)
            return
        await self._serve_link(contender, stream, initiated_locally=False)

    async def _serve_link(
        self,
        session: BgpSession,
        stream: trio.SocketStream,
        *,
        initiated_locally: bool,
        refused: bool = False,
    ) -> None:
        link = _Link(session, stream)
        self._links[session] = link
        try:
            with link.scope:
                if refused:
                    link.closing = True
                else:
                    session.connection_made(
                        trio.current_time(), initiated_locally=initiated_locally
                    )
                self.pump()
                if refused:  # the refusing session never saw the connection: send its Cease
                    link.outbuf += session.data_to_send()
                    link.wake.set()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._reader, link)
                    nursery.start_soon(self._writer, link)
        finally:
            self._links.pop(session, None)
            with trio.CancelScope(shield=True):
                await stream.aclose()

    async def _reader(self, link: _Link) -> None:
        session = link.session
        while True:
            await self._handler.wait_for_room(self)
            try:
                data = await link.stream.receive_some(READ_CHUNK)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            now = trio.current_time()
            if not data:
                if not link.closing:
                    session.connection_lost(now)
                    self.pump()
                link.scope.cancel()
                return
            session.receive_data(data, now)
            self.pump()
            await trio.lowlevel.checkpoint()  # a full table arriving never starves timers

    async def _writer(self, link: _Link) -> None:
        while True:
            await link.wake.wait()
            link.wake = trio.Event()
            while link.outbuf:
                chunk = bytes(link.outbuf)
                link.outbuf.clear()
                try:
                    await link.stream.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    if not link.closing:
                        link.session.connection_lost(trio.current_time())
                        self.pump()
                    link.scope.cancel()
                    return
                link.session.data_sent(len(chunk), trio.current_time())
            if link.closing:
                link.scope.cancel()
                return

    def _close(self, session: BgpSession) -> None:
        scope = self._connecting.pop(session, None)
        if scope is not None:
            scope.cancel()
        link = self._links.get(session)
        if link is not None:
            link.closing = True
            link.wake.set()
            # a peer that never reads must not hold the close up
            link.scope.deadline = min(
                link.scope.deadline, trio.current_time() + CLOSE_FLUSH_TIMEOUT_S
            )

    # --- administrative -----------------------------------------------------------------------

    def shutdown(self, communication: str | None) -> None:
        """Administrative shutdown: Cease with a communication; no restart."""
        now = trio.current_time()
        self.admin_down = True
        for session in self.connections.sessions:
            session.stop(now, communication)
        self.pump()

    def restart(self) -> None:
        """Start again after `shutdown` (or an escalated error)."""
        self.admin_down = False
        self.session.start(trio.current_time())
        self.pump()

    async def flush(self, timeout: float = CLOSE_FLUSH_TIMEOUT_S) -> None:
        """Wait (bounded) until every link has written its output and closed."""
        with trio.move_on_after(timeout):
            while any(
                link.outbuf or not link.scope.cancel_called
                for link in self._links.values()
                if link.closing
            ):
                await trio.sleep(0.01)

    def send_updates(self, updates: list[Update]) -> int:
        """Queue UPDATEs on the established session; returns how many were queued."""
        session = self.session
        if session.state is not State.ESTABLISHED:
            return 0
        now = trio.current_time()
        for update in updates:
            session.send_update(update, now)
        self.pump()
        return len(updates)
