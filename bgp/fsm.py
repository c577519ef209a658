"""The vocabulary of the BGP finite-state machine (RFC 4271 §8): states, input events, the
per-state message rules, the session attributes (`SessionConfig`) and the events a
`bgp.session.BgpSession` hands to its shell.

The machine itself runs inside `BgpSession`; this module holds what is pure data so that the
shell, the RIB and the tests can share it without importing the session.

Inputs (RFC 4271 §8.1 numbering, with RFC 9687's SendHoldTimer) map to session methods:

    ManualStart (1) / ..._with_PassiveTcpEstablishment (4)   start(now, passive)
    ManualStop (2)                                            stop(now, communication)
    AutomaticStart (3, 5)                                     IdleHoldTimer expiry after an error
    ConnectRetryTimer_Expires (9), HoldTimer_Expires (10),
    KeepaliveTimer_Expires (11), IdleHoldTimer_Expires (13),
    SendHoldTimer_Expires (RFC 9687)                          handle_timer(now)
    Tcp_CR_Acked (16) / TcpConnectionConfirmed (17)           connection_made(now)
    TcpConnectionFails (18)                                   connection_failed / connection_lost
    BGPOpen (19), BGPHeaderErr (21), BGPOpenMsgErr (22),
    NotifMsgVerErr (24), NotifMsg (25), KeepAliveMsg (26),
    UpdateMsg (27), UpdateMsgErr (28), ROUTE-REFRESH          receive_data(data, now)
    OpenCollisionDump (23)                                    cease(now, COLLISION_RESOLUTION)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from typing import TypeAlias

import attrs

from bgp.codec.capabilities import (
    Capability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    GracefulRestartCapability,
    GracefulRestartFamily,
    MultiprotocolCapability,
    RouteRefreshCapability,
)
from bgp.codec.header import MessageType
from bgp.codec.open import Open
from bgp.codec.update import Update
from bgp.errors import BgpError, ErrorCode, FsmSubcode
from bgp.types import (
    AS_TRANS,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MAX_ASN,
    SUPPORTED_FAMILIES,
    Family,
    Negotiated,
    family_of,
)


class State(Enum):
    """RFC 4271 §8.2.2 session states."""

    IDLE = "Idle"
    CONNECT = "Connect"
    ACTIVE = "Active"
    OPENSENT = "OpenSent"
    OPENCONFIRM = "OpenConfirm"
    ESTABLISHED = "Established"


CONNECTED_STATES = frozenset({State.OPENSENT, State.OPENCONFIRM, State.ESTABLISHED})
"""States with a TCP connection over which BGP messages flow."""


class FsmEvent(Enum):
    """The RFC 4271 §8.1 input events this implementation acts on (names as in the RFC)."""

    MANUAL_START = "ManualStart"
    MANUAL_STOP = "ManualStop"
    AUTOMATIC_START = "AutomaticStart"
    MANUAL_START_PASSIVE = "ManualStart_with_PassiveTcpEstablishment"
    AUTOMATIC_START_PASSIVE = "AutomaticStart_with_PassiveTcpEstablishment"
    CONNECT_RETRY_TIMER_EXPIRES = "ConnectRetryTimer_Expires"
    HOLD_TIMER_EXPIRES = "HoldTimer_Expires"
    KEEPALIVE_TIMER_EXPIRES = "KeepaliveTimer_Expires"
    IDLE_HOLD_TIMER_EXPIRES = "IdleHoldTimer_Expires"
    SEND_HOLD_TIMER_EXPIRES = "SendHoldTimer_Expires"
    TCP_CONNECTION_CONFIRMED = "TcpConnectionConfirmed"
    TCP_CONNECTION_FAILS = "TcpConnectionFails"
    BGP_OPEN = "BGPOpen"
    BGP_HEADER_ERR = "BGPHeaderErr"
    BGP_OPEN_MSG_ERR = "BGPOpenMsgErr"
    OPEN_COLLISION_DUMP = "OpenCollisionDump"
    NOTIF_MSG_VER_ERR = "NotifMsgVerErr"
    NOTIF_MSG = "NotifMsg"
    KEEPALIVE_MSG = "KeepAliveMsg"
    UPDATE_MSG = "UpdateMsg"
    UPDATE_MSG_ERR = "UpdateMsgErr"
    ROUTE_REFRESH = "RouteRefresh"


# Which received message types each connected state accepts; NOTIFICATION is always accepted.
# Anything else is an RFC 6608 "unexpected message" FSM error.
EXPECTED_MESSAGES: dict[State, frozenset[MessageType]] = {
    State.OPENSENT: frozenset({MessageType.OPEN, MessageType.NOTIFICATION}),
    State.OPENCONFIRM: frozenset({MessageType.KEEPALIVE, MessageType.NOTIFICATION}),
    State.ESTABLISHED: frozenset(
        {
            MessageType.UPDATE,
            MessageType.KEEPALIVE,
            MessageType.ROUTE_REFRESH,
            MessageType.NOTIFICATION,
        }
    ),
}

_UNEXPECTED_SUBCODE = {
    State.OPENSENT: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT,
    State.OPENCONFIRM: FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
    State.ESTABLISHED: FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED,
}


def unexpected_message_error(state: State, message_type: MessageType) -> BgpError:
    """The RFC 6608 FSM Error for receiving ``message_type`` in ``state``."""
    subcode = _UNEXPECTED_SUBCODE.get(state, FsmSubcode.UNSPECIFIED)
    return BgpError(
        ErrorCode.FSM_ERROR, subcode, reason=f"{message_type.name} received in {state.value}"
    )


SEND_HOLD_TIMER_EXPIRED = 8
"""RFC 9687 NOTIFICATION error code "Send Hold Timer Expired" (not yet in `ErrorCode`)."""


def error_for_notification(code: int, subcode: int, data: bytes) -> BgpError | None:
    """A `BgpError` describing a NOTIFICATION, or None when its code is not one we know."""
    try:
        return BgpError(ErrorCode(code), subcode, data)
    except ValueError:
        return None


# --- session attributes (RFC 4271 §8: the configuration of one FSM) ------------------------


def _usable_asn(value: int) -> bool:
    return 1 <= value <= MAX_ASN and value != AS_TRANS


def _check_asn(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not _usable_asn(value):
        raise ValueError(f"{attribute.name}={value} is not a usable AS number")


def _check_peer_asn(
    _instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and not _usable_asn(value):
        raise ValueError(f"{attribute.name}={value} is not a usable AS number")


def _check_hold_time(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if value != 0 and not 3 <= value <= 0xFFFF:
        raise ValueError(f"hold_time={value}: must be 0 or 3..65535 (RFC 4271 §4.2)")


def _check_positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}={value} must be positive")


def _check_router_id(
    _instance: object, _attribute: attrs.Attribute[IPv4Address], value: IPv4Address
) -> None:
    if int(value) == 0:
        raise ValueError("local_router_id must not be 0.0.0.0")


def _family_set(values: Iterable[Family]) -> frozenset[Family]:
    return frozenset(values)


def _check_families(
    _instance: object, _attribute: attrs.Attribute[frozenset[Family]], value: frozenset[Family]
) -> None:
    if not value or not value <= SUPPORTED_FAMILIES:
        raise ValueError(f"families must be a non-empty subset of {sorted(SUPPORTED_FAMILIES)}")


def _check_restart_time(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFFF:
        raise ValueError(f"restart_time={value} outside 0..4095")


@attrs.frozen
class GracefulRestartConfig:
    """What we advertise in the Graceful Restart capability (RFC 4724 §3)."""

    restart_time: int = attrs.field(default=120, validator=_check_restart_time)
    restarting: bool = False
    forwarding_preserved: bool = False


@attrs.frozen(kw_only=True)
class SessionConfig:
    """Per-peer session settings. ``peer_asn`` None accepts any AS; ``hold_time`` 0 disables
    keepalives and the hold timer; ``send_hold_s`` None means the RFC 9687 default."""

    local_asn: int = attrs.field(validator=_check_asn)
    local_router_id: IPv4Address = attrs.field(validator=_check_router_id)
    peer_address: IPv4Address | IPv6Address
    peer_asn: int | None = attrs.field(default=None, validator=_check_peer_asn)
    hold_time: int = attrs.field(default=90, validator=_check_hold_time)
    connect_retry_s: float = attrs.field(default=5.0, validator=_check_positive)
    passive: bool = False
    families: frozenset[Family] = attrs.field(
        default=frozenset({IPV4_UNICAST, IPV6_UNICAST}),
        converter=_family_set,
        validator=_check_families,
    )
    route_refresh: bool = True
    enhanced_route_refresh: bool = True
    extended_message: bool = True
    graceful_restart: GracefulRestartConfig | None = None
    idle_hold_s: float = attrs.field(default=1.0, validator=_check_positive)
    idle_hold_max_s: float = attrs.field(default=60.0, validator=_check_positive)
    damp_peer_oscillations: bool = True
    send_hold_s: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_check_positive)
    )

    @property
    def keepalive_s(self) -> float:
        """The configured KeepaliveTime: a third of the hold time."""
        return self.hold_time / 3

    def capabilities(self) -> list[Capability]:
        """The capabilities we offer (4-octet AS is added by `Open.for_speaker`)."""
        families = sorted(self.families)
        caps: list[Capability] = [MultiprotocolCapability(afi, safi) for afi, safi in families]
        if self.route_refresh:
            caps.append(RouteRefreshCapability())
        if self.enhanced_route_refresh:
            caps.append(EnhancedRouteRefreshCapability())
        if self.extended_message:
            caps.append(ExtendedMessageCapability())
        if self.graceful_restart is not None:
            restart = self.graceful_restart
            caps.append(
                GracefulRestartCapability(
                    restart_time=restart.restart_time,
                    restart_state=restart.restarting,
                    families=[
                        GracefulRestartFamily(afi, safi, restart.forwarding_preserved)
                        for afi, safi in families
                    ],
                )
            )
        return caps

    def local_open(self) -> Open:
        return Open.for_speaker(
            self.local_asn, self.hold_time, self.local_router_id, self.capabilities()
        )


# --- events handed to the shell -----------------------------------------------------------------


@attrs.frozen
class ConnectRequested:
    """Open a TCP connection to the peer, then call `connection_made` or `connection_failed`."""


@attrs.frozen
class CloseRequested:
    """Send what `data_to_send` still returns, then close the TCP connection (or abandon the
    connection attempt in progress)."""


@attrs.frozen
class StateChanged:
    old: State
    new: State


@attrs.frozen
class PeerGracefulRestart:
    """The peer's Graceful Restart capability (RFC 4724) restricted to the negotiated families:
    how long to keep its routes as stale, and for which families it keeps forwarding."""

    restart_time: int
    restarting: bool
    notification: bool
    families: frozenset[Family]
    forwarding_preserved: frozenset[Family]

    @classmethod
    def from_open(
        cls, peer_open: Open, negotiated: frozenset[Family]
    ) -> PeerGracefulRestart | None:
        capability = peer_open.capability(GracefulRestartCapability)
        return None if capability is None else cls.from_capability(capability, negotiated)

    @classmethod
    def from_capability(
        cls, capability: GracefulRestartCapability, negotiated: frozenset[Family]
    ) -> PeerGracefulRestart:
        families: set[Family] = set()
        forwarding: set[Family] = set()
        for entry in capability.families:
            family = family_of(entry.afi, entry.safi)
            if family is None or family not in negotiated:
                continue
            families.add(family)
            if entry.forwarding_preserved:
                forwarding.add(family)
        return cls(
            restart_time=capability.restart_time,
            restarting=capability.restart_state,
            notification=capability.notification,
            families=frozenset(families),
            forwarding_preserved=frozenset(forwarding),
        )


@attrs.frozen
class SessionEstablished:
    negotiated: Negotiated
    peer_open: Open
    graceful_restart: PeerGracefulRestart | None = None


@attrs.frozen
class SessionDown:
    """The connection ended. ``error`` is the NOTIFICATION sent (``sent``) or received (None if
    none, or if its code is unknown); ``was_established`` tells the RIB whether routes exist."""

    reason: str
    error: BgpError | None
    sent: bool
    was_established: bool = False


@attrs.frozen
class UpdateReceived:
    update: Update


@attrs.frozen
class EndOfRibReceived:
    family: Family


@attrs.frozen
class RouteRefreshReceived:
    afi: int
    safi: int
    subtype: int


@attrs.frozen
class NotificationReceived:
    code: int
    subcode: int
    data: bytes
    communication: str | None = None


@attrs.frozen
class ProtocolWarning:
    """A non-fatal RFC 7606 error (treat-as-withdraw, attribute discard); the UPDATE it came
    with is still delivered as `UpdateReceived`."""

    error: BgpError


Event: TypeAlias = (
    ConnectRequested
    | CloseRequested
    | StateChanged
    | SessionEstablished
    | SessionDown
    | UpdateReceived
    | EndOfRibReceived
    | RouteRefreshReceived
    | NotificationReceived
    | ProtocolWarning
)
