"""Message header checks (RFC 4271 §6.1, RFC 8654) and stream framing."""

from __future__ import annotations

import pytest

from bgp.codec import Keepalive, Notification, RouteRefresh, Update, decode, encode, split_messages
from bgp.codec.header import MessageType
from bgp.errors import BgpError, ErrorCode, Handling, MessageHeaderSubcode
from bgp.types import Negotiated

from .wire import EXTENDED, MARKER, NEW_IBGP, message

PLAIN = Negotiated()


def header_error(data: bytes, negotiated: Negotiated = PLAIN) -> BgpError:
    with pytest.raises(BgpError) as info:
        decode(data, negotiated)
    assert info.value.code is ErrorCode.MESSAGE_HEADER_ERROR
    assert info.value.handling is Handling.SESSION_RESET
    return info.value


def test_keepalive_known_answer() -> None:
    wire = encode(Keepalive(), PLAIN)
    assert wire == MARKER + b"\x00\x13\x04"
    assert len(wire) == 19
    assert decode(wire, PLAIN) == Keepalive()


def test_bad_marker_is_connection_not_synchronized() -> None:
    bad = b"\xff" * 15 + b"\xfe" + b"\x00\x13\x04"
    assert header_error(bad).subcode == MessageHeaderSubcode.CONNECTION_NOT_SYNCHRONIZED


@pytest.mark.parametrize("length", [0, 18, 4097, 65535])
def test_length_outside_bounds_carries_the_length_field(length: int) -> None:
    data = MARKER + length.to_bytes(2, "big") + b"\x04"
    error = header_error(data)
    assert error.subcode == MessageHeaderSubcode.BAD_MESSAGE_LENGTH
    assert error.data == length.to_bytes(2, "big")


@pytest.mark.parametrize(
    ("msg_type", "body_len"),
    [(1, 9), (2, 3), (3, 1), (4, 1), (5, 3)],
)
def test_per_type_minimum_lengths(msg_type: int, body_len: int) -> None:
    error = header_error(message(msg_type, b"\x00" * body_len))
    assert error.subcode == MessageHeaderSubcode.BAD_MESSAGE_LENGTH
    assert error.data == (19 + body_len).to_bytes(2, "big")


@pytest.mark.parametrize("msg_type", [0, 6, 255])
def test_unknown_type_carries_the_type(msg_type: int) -> None:
    error = header_error(message(msg_type, b""))
    assert error.subcode == MessageHeaderSubcode.BAD_MESSAGE_TYPE
    assert error.data == bytes([msg_type])


def test_length_field_must_match_the_data() -> None:
    wire = encode(Keepalive(), PLAIN)
    assert header_error(wire + b"\x00").subcode == MessageHeaderSubcode.BAD_MESSAGE_LENGTH
    assert header_error(wire[:18]).subcode == MessageHeaderSubcode.BAD_MESSAGE_LENGTH


def test_extended_message_allows_large_updates_but_not_large_open() -> None:
    body = b"\x00\x00\x00\x00" + b"\x00" * 5000  # 5000 octets of 0.0.0.0/0 NLRI
    big = message(2, body)
    header_error(big)  # 4096 limit without the capability
    decoded = decode(big, EXTENDED)  # accepted; the NLRI lacks attributes -> treat-as-withdraw
    assert isinstance(decoded, Update)
    assert len(decoded.nlri) == 5000
    assert decoded.treat_as_withdraw
    error = header_error(message(1, b"\x04" + b"\x00" * 4999), EXTENDED)
    assert error.subcode == MessageHeaderSubcode.BAD_MESSAGE_LENGTH


def test_encode_refuses_oversized_messages() -> None:
    notification = Notification(ErrorCode.CEASE, 0, b"x" * 5000)
    with pytest.raises(ValueError, match="exceeds 4096"):
        encode(notification, PLAIN)
    assert decode(encode(notification, EXTENDED), EXTENDED) == notification


def test_split_messages_returns_complete_frames_and_the_rest() -> None:
    keepalive = encode(Keepalive(), PLAIN)
    refresh = encode(RouteRefresh(1, 1), PLAIN)
    update = encode(Update(), NEW_IBGP)
    stream = keepalive + refresh + update + update[:10]
    frames, rest = split_messages(stream, PLAIN)
    assert frames == [keepalive, refresh, update]
    assert rest == update[:10]
    assert split_messages(b"", PLAIN) == ([], b"")
    assert split_messages(bytearray(keepalive[:18]), PLAIN) == ([], keepalive[:18])


def test_split_messages_detects_a_bad_marker_before_the_header_is_complete() -> None:
    with pytest.raises(BgpError) as info:
        split_messages(b"\xff" * 4 + b"\x00", PLAIN)
    assert info.value.subcode == MessageHeaderSubcode.CONNECTION_NOT_SYNCHRONIZED


def test_split_messages_rejects_bad_length_and_type() -> None:
    for data, subcode in [
        (MARKER + b"\x00\x05\x04", MessageHeaderSubcode.BAD_MESSAGE_LENGTH),
        (MARKER + b"\x00\x13\x09", MessageHeaderSubcode.BAD_MESSAGE_TYPE),
    ]:
        with pytest.raises(BgpError) as info:
            split_messages(data, PLAIN)
        assert info.value.subcode == subcode


def test_message_types() -> None:
    assert [t.value for t in MessageType] == [1, 2, 3, 4, 5]
