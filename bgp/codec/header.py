"""The fixed BGP message header (RFC 4271 §4.1) and its checks (RFC 4271 §6.1, RFC 8654).

 0                   1                   2                   3
 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|                                                               |
+                                                               +
|                           Marker                              |
+                      (16 octets of 0xFF)                      +
|                                                               |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
|          Length               |      Type     |
+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

from enum import IntEnum

import attrs

from bgp.errors import BgpError, ErrorCode, MessageHeaderSubcode
from bgp.types import Negotiated

MARKER = b"\xff" * 16
HEADER_LENGTH = 19
MAX_MESSAGE_LENGTH = 4096
MAX_EXTENDED_MESSAGE_LENGTH = 65535


class MessageType(IntEnum):
    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


_TYPES = {t.value: t for t in MessageType}

# Smallest legal total length per type (RFC 4271 §4.2-4.5, RFC 2918 §3).
_MIN_LENGTH = {
    MessageType.OPEN: 29,
    MessageType.UPDATE: 23,
    MessageType.NOTIFICATION: 21,
    MessageType.KEEPALIVE: 19,
    MessageType.ROUTE_REFRESH: 23,
}


@attrs.frozen
class Header:
    type: MessageType
    length: int


def max_message_length(msg_type: MessageType, negotiated: Negotiated) -> int:
    """4096, or 65535 once Extended Message is negotiated — never for OPEN/KEEPALIVE (RFC 8654)."""
    if negotiated.extended_message and msg_type not in (MessageType.OPEN, MessageType.KEEPALIVE):
        return MAX_EXTENDED_MESSAGE_LENGTH
    return MAX_MESSAGE_LENGTH


def encode_header(msg_type: MessageType, body_length: int) -> bytes:
    return MARKER + (HEADER_LENGTH + body_length).to_bytes(2, "big") + bytes([msg_type])


def marker_ok(data: bytes) -> bool:
    """True when the (possibly partial) first octets of ``data`` agree with the marker."""
    head = data[:16]
    return head == MARKER[: len(head)]


def _bad_length(field: bytes, reason: str) -> BgpError:
    return BgpError(
        ErrorCode.MESSAGE_HEADER_ERROR,
        MessageHeaderSubcode.BAD_MESSAGE_LENGTH,
        field,
        reason=reason,
    )


def decode_header(data: bytes, negotiated: Negotiated) -> Header:
    """Check the first 19 octets of ``data``; raise the RFC 4271 §6.1 error for a bad header."""
    if not marker_ok(data):
        raise BgpError(
            ErrorCode.MESSAGE_HEADER_ERROR,
            MessageHeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
            reason="marker is not all ones",
        )
    if len(data) < HEADER_LENGTH:
        raise _bad_length(data[16:18], f"only {len(data)} octets, a header needs 19")
    field = data[16:18]
    length = int.from_bytes(field, "big")
    limit = MAX_EXTENDED_MESSAGE_LENGTH if negotiated.extended_message else MAX_MESSAGE_LENGTH
    if length < HEADER_LENGTH or length > limit:
        raise _bad_length(field, f"length {length} outside 19..{limit}")
    msg_type = _TYPES.get(data[18])
    if msg_type is None:
        raise BgpError(
            ErrorCode.MESSAGE_HEADER_ERROR,
            MessageHeaderSubcode.BAD_MESSAGE_TYPE,
            data[18:19],
            reason=f"unknown message type {data[18]}",
        )
    if length < _MIN_LENGTH[msg_type]:
        raise _bad_length(field, f"{msg_type.name} of length {length} is too short")
    if length > max_message_length(msg_type, negotiated):
        raise _bad_length(field, f"{msg_type.name} of length {length} is too long")
    if msg_type is MessageType.KEEPALIVE and length != HEADER_LENGTH:
        raise _bad_length(field, f"KEEPALIVE of length {length}")
    return Header(msg_type, length)
