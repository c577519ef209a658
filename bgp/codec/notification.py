"""NOTIFICATION message (RFC 4271 §4.5) and the shutdown communication (RFC 8203, RFC 9003).

    +---------------+---------------+--------------------------+
    | Error code (1)| Subcode (1)   |   Data (variable)        |
    +---------------+---------------+--------------------------+

For Cease / Administrative Shutdown (2) and Administrative Reset (4), Data may carry a
shutdown communication: one length octet, then that many octets of UTF-8 (at most 255).
"""

from __future__ import annotations

import attrs

from bgp.errors import BgpError, CeaseSubcode, ErrorCode, MessageHeaderSubcode, error_name
from bgp.types import enum_or_int

MAX_SHUTDOWN_COMMUNICATION = 255
_SHUTDOWN_SUBCODES = frozenset(
    {CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, CeaseSubcode.ADMINISTRATIVE_RESET}
)


def _code(value: int) -> int:
    return enum_or_int(ErrorCode, value)


def _octet(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{attribute.name}={value} does not fit in 1 octet")


@attrs.frozen
class Notification:
    """A NOTIFICATION; ``code`` is an `ErrorCode` when known (peers may send others)."""

    code: int = attrs.field(converter=_code, validator=_octet)
    subcode: int = attrs.field(default=0, validator=_octet)
    data: bytes = b""

    @classmethod
    def from_error(cls, error: BgpError) -> Notification:
        return cls(error.code, error.subcode, error.data)

    @classmethod
    def cease(cls, subcode: CeaseSubcode, communication: str = "") -> Notification:
        """A Cease; for subcodes 2 and 4 with the shutdown communication (truncated to 255
        octets on a character boundary)."""
        if subcode not in _SHUTDOWN_SUBCODES:
            return cls(ErrorCode.CEASE, subcode)
        raw = communication.encode("utf-8")[:MAX_SHUTDOWN_COMMUNICATION]
        text = raw.decode("utf-8", errors="ignore").encode("utf-8")
        return cls(ErrorCode.CEASE, subcode, bytes([len(text)]) + text)

    @property
    def shutdown_communication(self) -> str | None:
        """The RFC 9003 message of a Cease 2/4, or None when absent or malformed."""
        if self.code != ErrorCode.CEASE or self.subcode not in _SHUTDOWN_SUBCODES or not self.data:
            return None
        length = self.data[0]
        if len(self.data) < 1 + length:
            return None
        try:
            return self.data[1 : 1 + length].decode("utf-8")
        except UnicodeDecodeError:
            return None

    def __str__(self) -> str:
        text = error_name(self.code, self.subcode)
        message = self.shutdown_communication
        if message:
            return f"{text}: {message!r}"
        return f"{text} [data {self.data.hex(' ')}]" if self.data else text


def encode_notification(message: Notification) -> bytes:
    return bytes([message.code, message.subcode]) + message.data


def decode_notification(body: bytes) -> Notification:
    if len(body) < 2:
        # The header check (minimum length 21) makes this unreachable through `decode`.
        raise BgpError(
            ErrorCode.MESSAGE_HEADER_ERROR,
            MessageHeaderSubcode.BAD_MESSAGE_LENGTH,
            reason="NOTIFICATION too short",
        )
    return Notification(body[0], body[1], body[2:])
