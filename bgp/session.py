"""One BGP session as a sans-IO object (h11 style): bytes and the time go in, events and bytes
come out, and `get_timer` says when `handle_timer` has work.

The shell (a Trio task) owns the socket and the clock. It reacts to each event in order
(`ConnectRequested` → connect; `CloseRequested` → write what `data_to_send` returns, then close),
writes `data_to_send()` and reports each completed write with `data_sent(n, now)`, feeds received
bytes to `receive_data(data, now)` and sleeps until `get_timer()` to call `handle_timer(now)`.

The state machine is RFC 4271 §8 without the optional DelayOpen and in-OpenSent collision
detection; collisions between two connections are arbitrated by `bgp.collision`. Choices worth
knowing: a received NOTIFICATION just ends the session (no FSM Error reply), every well-formed
message restarts the HoldTimer, and automatic restarts wait an exponential IdleHoldTime
(DampPeerOscillations) that resets once a session stayed up for the maximum wait.
"""

from __future__ import annotations

import random
from collections import deque

import attrs

from bgp.codec.header import (
    HEADER_LENGTH,
    MessageType,
    decode_header,
    marker_ok,
    max_message_length,
)
from bgp.codec.messages import Keepalive, Message, decode, encode
from bgp.codec.notification import Notification
from bgp.codec.open import Open, negotiate, validate_open
from bgp.codec.route_refresh import RouteRefresh, RouteRefreshSubtype
from bgp.codec.update import Update, end_of_rib_family
from bgp.errors import BgpError, CeaseSubcode, ErrorCode, MessageHeaderSubcode
from bgp.fsm import (
    CONNECTED_STATES,
    EXPECTED_MESSAGES,
    SEND_HOLD_TIMER_EXPIRED,
    CloseRequested,
    ConnectRequested,
    EndOfRibReceived,
    Event,
    FsmEvent,
    GracefulRestartConfig,
    NotificationReceived,
    PeerGracefulRestart,
    ProtocolWarning,
    RouteRefreshReceived,
    SessionConfig,
    SessionDown,
    SessionEstablished,
    State,
    StateChanged,
    UpdateReceived,
    error_for_notification,
    unexpected_message_error,
)
from bgp.timers import (
    OPENSENT_HOLD_TIME,
    IdleHoldBackoff,
    SendProgress,
    Timer,
    default_send_hold_time,
    jittered,
)
from bgp.types import Negotiated

__all__ = [
    "SEND_HOLD_TIMER_EXPIRED",
    "BgpSession",
    "GracefulRestartConfig",
    "SessionConfig",
    "SessionUsageError",
]

_PRE_OPEN = Negotiated()


class SessionUsageError(RuntimeError):
    """The shell called the session in a way its current state does not allow."""


class BgpSession:
    """The BGP FSM and message handling for one peer; see the module docstring."""

    def __init__(self, config: SessionConfig, *, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self._local_open = config.local_open()
        self._state = State.IDLE
        self._events: deque[Event] = deque()
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._wire = _PRE_OPEN  # what framing and decoding use; the negotiated one after OPEN
        self._negotiated: Negotiated | None = None
        self._peer_open: Open | None = None
        self._initiated_locally: bool | None = None
        self._established_at: float | None = None
        self._automatic_restart = False  # set by start(), cleared by stop()/cease()
        self._connect_retry = Timer()
        self._hold = Timer()
        self._keepalive = Timer()
        self._idle_hold = Timer()
        self._send_progress = SendProgress()
        #: the longest wait (s) between two KEEPALIVE/UPDATE sent in the current Established
        #: session: the peer's hold timer runs out if it reaches the hold time (a slow event
        #: loop shows here first)
        self.send_gap_max = 0.0
        self._alive_sent_at: float | None = None
        self._idle_backoff = IdleHoldBackoff(
            config.idle_hold_s, config.idle_hold_max_s, config.damp_peer_oscillations
        )

    # --- observable state ---------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def negotiated(self) -> Negotiated | None:
        """What the OPENs of the current connection agreed on (None before the peer's OPEN)."""
        return self._negotiated

    @property
    def peer_open(self) -> Open | None:
        return self._peer_open

    @property
    def local_open(self) -> Open:
        return self._local_open

    @property
    def initiated_locally(self) -> bool | None:
        """Whether the current TCP connection was opened by us (None without a connection)."""
        return self._initiated_locally

    # --- outputs ------------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def events(self) -> list[Event]:
        drained = list(self._events)
        self._events.clear()
        return drained

    def get_timer(self) -> float | None:
        """The earliest deadline at which `handle_timer` has work, or None."""
        return min((deadline for deadline, _ in self._deadlines()), default=None)

    # --- administrative inputs ----------------------------------------------------------------

    def start(self, now: float, passive: bool = False) -> None:
        """ManualStart (``passive``: ..._with_PassiveTcpEstablishment). Ignored unless Idle.
        Automatic restarts later follow ``config.passive``."""
        if self._state is not State.IDLE:
            return
        self._automatic_restart = True
        self._idle_backoff.reset()
        self._idle_hold.stop()
        self._begin(now, passive=passive or self.config.passive)

    def stop(self, now: float, communication: str | None = None) -> None:
        """ManualStop: Cease / Administrative Shutdown with an RFC 9003 communication."""
        self.cease(now, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, communication)

    def cease(self, now: float, subcode: CeaseSubcode, communication: str | None = None) -> None:
        """End the session with a Cease NOTIFICATION (if connected) and do not restart it.
        Used for ManualStop and for closing the loser of a connection collision."""
        self._automatic_restart = False
        self._idle_hold.stop()
        if self._state in CONNECTED_STATES:
            if communication is None:
                notification = Notification(ErrorCode.CEASE, subcode)
            else:
                notification = Notification.cease(subcode, communication)
            error = BgpError(ErrorCode.CEASE, subcode, notification.data)
            self._send_notification(notification, now)
            self._end_connection(now, f"sent {notification}", error, sent=True)
        elif self._state is not State.IDLE:
            self._connect_retry.stop()
            self._set_state(State.IDLE)
            self._emit(CloseRequested())

    # --- transport inputs ---------------------------------------------------------------------

    def connection_made(self, now: float, *, initiated_locally: bool | None = None) -> None:
        """TCP is up (Tcp_CR_Acked / TcpConnectionConfirmed): send OPEN. The direction defaults
        to "ours" in Connect and "theirs" in Active. In Idle the connection is refused."""
        if self._state in CONNECTED_STATES:
            raise SessionUsageError(f"connection_made in {self._state.value}: already connected")
        if self._state is State.IDLE:
            self._emit(CloseRequested())
            return
        if initiated_locally is None:
            initiated_locally = self._state is State.CONNECT
        self._initiated_locally = initiated_locally
        self._connect_retry.stop()
        self._inbox.clear()
        self._outbox.clear()
        self._send_progress.reset()
        self._send(self._local_open, now)
        self._hold.start(now, OPENSENT_HOLD_TIME)
        self._set_state(State.OPENSENT)

    def connection_failed(self, now: float) -> None:
        """The TCP connection attempt failed (TcpConnectionFails in Connect/Active)."""
        if self._state in CONNECTED_STATES:
            self.connection_lost(now)
        elif self._state in (State.CONNECT, State.ACTIVE):
            self._fall_back_to_active(now)

    def connection_lost(self, now: float) -> None:
        """The peer closed the TCP connection or it broke (TcpConnectionFails)."""
        if self._state not in CONNECTED_STATES:
            self.connection_failed(now)
            return
        self._outbox.clear()
        if self._state is State.OPENSENT:
            self._end_connection(now, "connection lost", None, sent=False, close=False, idle=False)
            self._fall_back_to_active(now)
        else:
            self._end_connection(now, "connection lost", None, sent=False, close=False)

    def data_sent(self, nbytes: int, now: float) -> None:
        """The shell wrote ``nbytes`` of `data_to_send` output to the socket (RFC 9687)."""
        self._send_progress.drained(nbytes, now)

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the peer, in any chunking. Never raises for bad input: errors become a
        NOTIFICATION, `SessionDown` and `CloseRequested`. Ignored without a connection."""
        if self._state not in CONNECTED_STATES or not data:
            return
        inbox = self._inbox
        inbox += data
        pos = 0
        try:
            while self._state in CONNECTED_STATES:
                available = len(inbox) - pos
                if available < HEADER_LENGTH:
                    if available and not marker_ok(bytes(inbox[pos:])):
                        raise BgpError(
                            ErrorCode.MESSAGE_HEADER_ERROR,
                            MessageHeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
                            reason="marker is not all ones",
                        )
                    break
                header = decode_header(bytes(inbox[pos : pos + HEADER_LENGTH]), self._wire)
                if available < header.length:
                    break
                start, pos = pos, pos + header.length
                if header.type not in EXPECTED_MESSAGES[self._state]:
                    raise unexpected_message_error(self._state, header.type)
                if header.type is MessageType.KEEPALIVE:
                    self._on_keepalive(now)  # the checked header is the whole message
                else:
                    self._receive_message(decode(bytes(inbox[start:pos]), self._wire), now)
        except BgpError as error:
            self._notify_and_close(error, now)
            return
        if self._state in CONNECTED_STATES:
            del inbox[:pos]

    def handle_timer(self, now: float) -> None:
        """Fire every timer whose deadline is at or before ``now``, earliest first."""
        while True:
            due = [(deadline, event) for deadline, event in self._deadlines() if deadline <= now]
            if not due:
                return
            self._on_timer(min(due, key=lambda item: item[0])[1], now)

    # --- messages we originate ----------------------------------------------------------------

    def send_update(self, update: Update, now: float) -> None:
        """Queue an UPDATE (Established only). ValueError if it does not fit in a message."""
        self._require_established("send_update")
        self._send(update, now)

    def send_route_refresh(self, afi: int, safi: int, subtype: int, now: float) -> None:
        """Queue a ROUTE-REFRESH (RFC 2918; BoRR/EoRR need RFC 7313 on both sides)."""
        negotiated = self._require_established("send_route_refresh")
        message = RouteRefresh(afi, safi, subtype)
        if not negotiated.route_refresh:
            raise SessionUsageError("the peer did not advertise route refresh")
        if message.family not in negotiated.families:
            raise SessionUsageError(f"AFI {afi}/SAFI {safi} was not negotiated")
        if subtype != RouteRefreshSubtype.NORMAL and not negotiated.enhanced_route_refresh:
            raise SessionUsageError("subtypes other than 0 need enhanced route refresh")
        self._send(message, now)

    # --- state machine internals --------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _set_state(self, new: State) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._emit(StateChanged(old, new))

    def _begin(self, now: float, *, passive: bool) -> None:
        if passive:
            self._set_state(State.ACTIVE)  # listen only, no ConnectRetryTimer
        else:
            self._request_connection(now)

    def _request_connection(self, now: float) -> None:
        self._connect_retry.start(now, jittered(self._rng, self.config.connect_retry_s))
        self._emit(ConnectRequested())
        self._set_state(State.CONNECT)

    def _fall_back_to_active(self, now: float) -> None:
        """Active state: listen, and retry the connection when ConnectRetryTimer expires."""
        if self.config.passive:
            self._connect_retry.stop()
        else:
            self._connect_retry.start(now, jittered(self._rng, self.config.connect_retry_s))
        self._set_state(State.ACTIVE)

    def _require_established(self, action: str) -> Negotiated:
        if self._state is not State.ESTABLISHED or self._negotiated is None:
            raise SessionUsageError(f"{action} in {self._state.value}: session not established")
        return self._negotiated

    def _deadlines(self) -> list[tuple[float, FsmEvent]]:
        """Running timers in priority order for equal deadlines."""
        timers = [
            (self._hold.deadline, FsmEvent.HOLD_TIMER_EXPIRES),
            (self._send_hold_deadline(), FsmEvent.SEND_HOLD_TIMER_EXPIRES),
            (self._keepalive.deadline, FsmEvent.KEEPALIVE_TIMER_EXPIRES),
            (self._connect_retry.deadline, FsmEvent.CONNECT_RETRY_TIMER_EXPIRES),
            (self._idle_hold.deadline, FsmEvent.IDLE_HOLD_TIMER_EXPIRES),
        ]
        return [(deadline, event) for deadline, event in timers if deadline is not None]

    def _send_hold_deadline(self) -> float | None:
        negotiated = self._negotiated
        if self._state is not State.ESTABLISHED or negotiated is None or not negotiated.hold_time:
            return None
        limit = self.config.send_hold_s or default_send_hold_time(negotiated.hold_time)
        return self._send_progress.stuck_deadline(limit)

    def _on_timer(self, event: FsmEvent, now: float) -> None:
        if event is FsmEvent.HOLD_TIMER_EXPIRES:
            self._hold.stop()
            expired = BgpError(ErrorCode.HOLD_TIMER_EXPIRED, reason="no message within hold time")
            self._notify_and_close(expired, now)
        elif event is FsmEvent.SEND_HOLD_TIMER_EXPIRES:
            self._send_notification(Notification(SEND_HOLD_TIMER_EXPIRED), now)
            stuck = error_for_notification(SEND_HOLD_TIMER_EXPIRED, 0, b"")
            self._end_connection(now, "send hold timer expired", stuck, sent=True)
        elif event is FsmEvent.KEEPALIVE_TIMER_EXPIRES:
            self._keepalive.stop()
            self._send(Keepalive(), now)  # restarts the timer
        elif event is FsmEvent.CONNECT_RETRY_TIMER_EXPIRES:
            self._connect_retry.stop()
            if self._state is State.CONNECT:
                self._emit(CloseRequested())  # abandon the attempt in progress
            if self._state in (State.CONNECT, State.ACTIVE):
                self._request_connection(now)
        elif event is FsmEvent.IDLE_HOLD_TIMER_EXPIRES:
            self._idle_hold.stop()
            if self._state is State.IDLE:
                self._begin(now, passive=self.config.passive)  # AutomaticStart

    def _notify_and_close(self, error: BgpError, now: float) -> None:
        self._send_notification(Notification.from_error(error), now)
        self._end_connection(now, str(error), error, sent=True)

    def _end_connection(
        self,
        now: float,
        reason: str,
        error: BgpError | None,
        *,
        sent: bool,
        close: bool = True,
        idle: bool = True,
    ) -> None:
        """Leave a connected state: report it, forget the connection and, when going Idle,
        schedule the automatic restart after the (damped) IdleHoldTime."""
        was_established = self._state is State.ESTABLISHED
        established_at = self._established_at
        if established_at is not None and now - established_at >= self._idle_backoff.maximum:
            self._idle_backoff.reset()  # it was up long enough: no damping for this failure
        self._emit(SessionDown(reason, error, sent, was_established))
        self._inbox.clear()
        self._hold.stop()
        self._keepalive.stop()
        self._send_progress.reset()
        self._wire = _PRE_OPEN
        self._negotiated = None
        self._peer_open = None
        self._initiated_locally = None
        self._established_at = None
        if idle:
            self._set_state(State.IDLE)
            if self._automatic_restart:
                self._idle_hold.start(now, self._idle_backoff.next_delay())
        if close:
            self._emit(CloseRequested())

    # --- received messages --------------------------------------------------------------------

    def _receive_message(self, message: Message, now: float) -> None:
        match message:
            case Open():
                self._on_open(message, now)
            case Keepalive():  # normally handled from its header in receive_data
                self._on_keepalive(now)
            case Update():
                self._on_update(message, now)
            case RouteRefresh():
                self._on_route_refresh(message, now)
            case Notification():
                self._on_notification(message, now)

    def _on_open(self, message: Open, now: float) -> None:
        validate_open(
            message,
            self.config.peer_asn,
            local_identifier=self.config.local_router_id,
            local_asn=self.config.local_asn,
        )
        negotiated = negotiate(self._local_open, message, self.config.local_asn)
        self._peer_open = message
        self._negotiated = self._wire = negotiated
        self._send(Keepalive(), now)  # also starts the KeepaliveTimer
        self._restart_hold(now)
        self._set_state(State.OPENCONFIRM)

    def _on_keepalive(self, now: float) -> None:
        self._restart_hold(now)
        if self._state is State.OPENCONFIRM:
            negotiated, peer_open = self._negotiated, self._peer_open
            assert negotiated is not None and peer_open is not None
            self._established_at = now
            self._send_progress.restart(now)
            self.send_gap_max, self._alive_sent_at = 0.0, now
            self._set_state(State.ESTABLISHED)
            graceful = PeerGracefulRestart.from_open(peer_open, negotiated.families)
            self._emit(SessionEstablished(negotiated, peer_open, graceful))

    def _on_update(self, update: Update, now: float) -> None:
        self._restart_hold(now)
        for error in update.errors:
            self._emit(ProtocolWarning(error))
        family = end_of_rib_family(update)
        self._emit(UpdateReceived(update) if family is None else EndOfRibReceived(family))

    def _on_route_refresh(self, message: RouteRefresh, now: float) -> None:
        self._restart_hold(now)
        negotiated = self._negotiated
        assert negotiated is not None
        # RFC 2918 §4 / RFC 7313 §5: requests we cannot honour are ignored.
        if not negotiated.route_refresh or message.family not in negotiated.families:
            return
        if message.subtype == RouteRefreshSubtype.NORMAL or (
            negotiated.enhanced_route_refresh
            and message.subtype in (RouteRefreshSubtype.BEGIN, RouteRefreshSubtype.END)
        ):
            self._emit(RouteRefreshReceived(message.afi, message.safi, message.subtype))

    def _on_notification(self, message: Notification, now: float) -> None:
        self._emit(
            NotificationReceived(
                message.code, message.subcode, message.data, message.shutdown_communication
            )
        )
        error = error_for_notification(message.code, message.subcode, message.data)
        self._end_connection(now, f"received {message}", error, sent=False)

    # --- sending ------------------------------------------------------------------------------

    def _send(self, message: Message, now: float) -> None:
        data = encode(message, self._wire)
        self._outbox += data
        self._send_progress.queued(len(data), now)
        if isinstance(message, Keepalive | Update):
            self._restart_keepalive(now)  # RFC 4271 §8.2.2: sending either restarts it
            if self._state is State.ESTABLISHED and self._alive_sent_at is not None:
                self.send_gap_max = max(self.send_gap_max, now - self._alive_sent_at)
                self._alive_sent_at = now

    def _send_notification(self, notification: Notification, now: float) -> None:
        room = max_message_length(MessageType.NOTIFICATION, self._wire) - HEADER_LENGTH - 2
        if len(notification.data) > room:
            notification = attrs.evolve(notification, data=notification.data[:room])
        self._send(notification, now)

    def _restart_hold(self, now: float) -> None:
        hold_time = self._negotiated.hold_time if self._negotiated else 0
        if hold_time:
            self._hold.start(now, hold_time)
        else:
            self._hold.stop()

    def _restart_keepalive(self, now: float) -> None:
        hold_time = self._negotiated.hold_time if self._negotiated else 0
        if hold_time:
            self._keepalive.start(now, jittered(self._rng, hold_time / 3))
        else:
            self._keepalive.stop()
