"""The BGP error type and the NOTIFICATION code registries.

One exception, `BgpError`, carries everything a session needs to react to a protocol error: the
NOTIFICATION error code, subcode and data it would send (RFC 4271 §4.5, §6), and the RFC 7606
`Handling` the error calls for. Only `Handling.SESSION_RESET` errors are ever *raised* by the
UPDATE decoder; the gentler outcomes (treat-as-withdraw, attribute discard) are *returned* inside
the decoded `Update` so that the session can log them and the RIB can act on them.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """NOTIFICATION Error Code (RFC 4271 §4.5; RFC 7313 §5 for ROUTE-REFRESH)."""

    MESSAGE_HEADER_ERROR = 1
    OPEN_MESSAGE_ERROR = 2
    UPDATE_MESSAGE_ERROR = 3
    HOLD_TIMER_EXPIRED = 4
    FSM_ERROR = 5
    CEASE = 6
    ROUTE_REFRESH_MESSAGE_ERROR = 7
    SEND_HOLD_TIMER_EXPIRED = 8  # RFC 9687


class MessageHeaderSubcode(IntEnum):
    """Message Header Error subcodes (RFC 4271 §6.1)."""

    UNSPECIFIC = 0
    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenSubcode(IntEnum):
    """OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5, RFC 9234)."""

    UNSPECIFIC = 0
    UNSUPPORTED_VERSION_NUMBER = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    # 5 (Authentication Failure) is deprecated.
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7
    # 8, 9, 10 are deprecated.
    ROLE_MISMATCH = 11


class UpdateSubcode(IntEnum):
    """UPDATE Message Error subcodes (RFC 4271 §6.3)."""

    UNSPECIFIC = 0
    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    # 7 (AS Routing Loop) is deprecated.
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class HoldTimerSubcode(IntEnum):
    """Hold Timer Expired has no subcodes; 0 is the only value sent."""

    UNSPECIFIC = 0


class FsmSubcode(IntEnum):
    """Finite State Machine Error subcodes (RFC 6608)."""

    UNSPECIFIED = 0
    UNEXPECTED_MESSAGE_IN_OPENSENT = 1
    UNEXPECTED_MESSAGE_IN_OPENCONFIRM = 2
    UNEXPECTED_MESSAGE_IN_ESTABLISHED = 3


class CeaseSubcode(IntEnum):
    """Cease subcodes (RFC 4486; Hard Reset RFC 8538; BFD Down RFC 9384)."""

    UNSPECIFIC = 0
    MAXIMUM_NUMBER_OF_PREFIXES_REACHED = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DE_CONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9
    BFD_DOWN = 10


class SendHoldTimerSubcode(IntEnum):
    """Send Hold Timer Expired has no subcodes (RFC 9687 §4)."""

    UNSPECIFIC = 0


class RouteRefreshSubcode(IntEnum):
    """ROUTE-REFRESH Message Error subcodes (RFC 7313 §5)."""

    RESERVED = 0
    INVALID_MESSAGE_LENGTH = 1


_SUBCODES: dict[ErrorCode, type[IntEnum]] = {
    ErrorCode.MESSAGE_HEADER_ERROR: MessageHeaderSubcode,
    ErrorCode.OPEN_MESSAGE_ERROR: OpenSubcode,
    ErrorCode.UPDATE_MESSAGE_ERROR: UpdateSubcode,
    ErrorCode.HOLD_TIMER_EXPIRED: HoldTimerSubcode,
    ErrorCode.FSM_ERROR: FsmSubcode,
    ErrorCode.CEASE: CeaseSubcode,
    ErrorCode.ROUTE_REFRESH_MESSAGE_ERROR: RouteRefreshSubcode,
    ErrorCode.SEND_HOLD_TIMER_EXPIRED: SendHoldTimerSubcode,
}


def error_name(code: int, subcode: int) -> str:
    """Readable ``code/subcode`` names, falling back to numbers for unknown values."""
    try:
        known = ErrorCode(code)
    except ValueError:
        return f"code {code}/subcode {subcode}"
    subcodes = _SUBCODES[known]
    try:
        sub_name = subcodes(subcode).name
    except ValueError:
        sub_name = f"subcode {subcode}"
    return f"{known.name}/{sub_name}"


class Handling(IntEnum):
    """RFC 7606 §2 error-handling approaches, ordered from least to most severe (§3 h)."""

    ATTRIBUTE_DISCARD = 1
    TREAT_AS_WITHDRAW = 2
    AFI_SAFI_DISABLE = 3
    SESSION_RESET = 4


class BgpError(Exception):
    """A BGP protocol error, with the NOTIFICATION it maps to and its RFC 7606 handling.

    ``data`` is the NOTIFICATION Data field (RFC 4271 §6 says what it holds for each subcode).
    ``reason`` is a human-readable explanation and never goes on the wire.
    Two errors compare equal when code, subcode, data and handling are equal.
    """

    def __init__(
        self,
        code: ErrorCode,
        subcode: int = 0,
        data: bytes = b"",
        *,
        handling: Handling = Handling.SESSION_RESET,
        reason: str = "",
    ) -> None:
        super().__init__(code, subcode, data)
        self.code = ErrorCode(code)
        self.subcode = int(subcode)
        self.data = bytes(data)
        self.handling = handling
        self.reason = reason

    def with_data(self, data: bytes) -> BgpError:
        return BgpError(self.code, self.subcode, data, handling=self.handling, reason=self.reason)

    def with_handling(self, handling: Handling) -> BgpError:
        return BgpError(self.code, self.subcode, self.data, handling=handling, reason=self.reason)

    def _key(self) -> tuple[int, int, bytes, Handling]:
        return (self.code, self.subcode, self.data, self.handling)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BgpError):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        text = error_name(self.code, self.subcode)
        if self.reason:
            text = f"{text}: {self.reason}"
        if self.data:
            shown = self.data[:32].hex(" ")
            more = "…" if len(self.data) > 32 else ""
            text = f"{text} [data {shown}{more}]"
        return f"{text} ({self.handling.name.lower().replace('_', '-')})"

    def __repr__(self) -> str:
        return (
            f"BgpError({self.code.name}, {self.subcode}, {self.data!r}, "
            f"handling={self.handling.name}, reason={self.reason!r})"
        )
