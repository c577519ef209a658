"""Top level of the codec: one function pair for whole messages, plus stream framing.

``decode`` of any byte string returns a message or raises `BgpError` — nothing else escapes.
``encode`` raises ValueError only for values that cannot be put on the wire (too long).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import attrs

from bgp.codec.header import (
    HEADER_LENGTH,
    MessageType,
    decode_header,
    encode_header,
    marker_ok,
    max_message_length,
)
from bgp.codec.notification import Notification, decode_notification, encode_notification
from bgp.codec.open import Open, decode_open, encode_open
from bgp.codec.route_refresh import RouteRefresh, decode_route_refresh, encode_route_refresh
from bgp.codec.update import Update, decode_update, encode_update
from bgp.errors import BgpError, ErrorCode, MessageHeaderSubcode
from bgp.types import Negotiated


@attrs.frozen
class Keepalive:
    """KEEPALIVE: the header alone (RFC 4271 §4.4)."""


Message: TypeAlias = Open | Update | Notification | Keepalive | RouteRefresh


def _body(message: Message, negotiated: Negotiated) -> tuple[MessageType, bytes]:
    match message:
        case Open():
            return MessageType.OPEN, encode_open(message)
        case Update():
            return MessageType.UPDATE, encode_update(message, negotiated)
        case Notification():
            return MessageType.NOTIFICATION, encode_notification(message)
        case Keepalive():
            return MessageType.KEEPALIVE, b""
        case RouteRefresh():
            return MessageType.ROUTE_REFRESH, encode_route_refresh(message)


def encode(message: Message, negotiated: Negotiated) -> bytes:
    """The complete message, header included."""
    msg_type, body = _body(message, negotiated)
    limit = max_message_length(msg_type, negotiated)
    if HEADER_LENGTH + len(body) > limit:
        raise ValueError(f"{msg_type.name} of {HEADER_LENGTH + len(body)} octets exceeds {limit}")
    return encode_header(msg_type, len(body)) + body


def _keepalive(body: bytes, message: bytes, negotiated: Negotiated) -> Message:
    return Keepalive()


def _open(body: bytes, message: bytes, negotiated: Negotiated) -> Message:
    return decode_open(body)


def _update(body: bytes, message: bytes, negotiated: Negotiated) -> Message:
    return decode_update(body, negotiated)


def _notification(body: bytes, message: bytes, negotiated: Negotiated) -> Message:
    return decode_notification(body)


def _route_refresh(body: bytes, message: bytes, negotiated: Negotiated) -> Message:
    return decode_route_refresh(body, message)


_DECODERS: dict[MessageType, Callable[[bytes, bytes, Negotiated], Message]] = {
    MessageType.OPEN: _open,
    MessageType.UPDATE: _update,
    MessageType.NOTIFICATION: _notification,
    MessageType.KEEPALIVE: _keepalive,
    MessageType.ROUTE_REFRESH: _route_refresh,
}


def decode(data: bytes, negotiated: Negotiated) -> Message:
    """Decode exactly one complete message (header included)."""
    data = bytes(data)
    header = decode_header(data, negotiated)
    if header.length != len(data):
        raise BgpError(
            ErrorCode.MESSAGE_HEADER_ERROR,
            MessageHeaderSubcode.BAD_MESSAGE_LENGTH,
            data[16:18],
            reason=f"length field {header.length} but {len(data)} octets given",
        )
    return _DECODERS[header.type](data[HEADER_LENGTH:], data, negotiated)


def split_messages(buffer: bytes | bytearray, negotiated: Negotiated) -> tuple[list[bytes], bytes]:
    """Cut the complete messages off the front of a received byte stream.

    Returns (complete messages, remaining partial bytes). Raises `BgpError` as soon as a header
    is bad: a wrong marker (even a partial one), a bad length or an unknown type.
    """
    messages: list[bytes] = []
    pos = 0
    end = len(buffer)
    while pos < end:
        if not marker_ok(bytes(buffer[pos : pos + 16])):
            raise BgpError(
                ErrorCode.MESSAGE_HEADER_ERROR,
                MessageHeaderSubcode.CONNECTION_NOT_SYNCHRONIZED,
                reason="marker is not all ones",
            )
        if end - pos < HEADER_LENGTH:
            break
        header = decode_header(bytes(buffer[pos : pos + HEADER_LENGTH]), negotiated)
        if end - pos < header.length:
            break
        messages.append(bytes(buffer[pos : pos + header.length]))
        pos += header.length
    return messages, bytes(buffer[pos:])
