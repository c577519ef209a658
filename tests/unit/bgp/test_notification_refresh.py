"""NOTIFICATION (with RFC 8203/9003 shutdown communication) and ROUTE-REFRESH (RFC 7313)."""

from __future__ import annotations

import pytest

from bgp.codec import Notification, RouteRefresh, RouteRefreshSubtype, decode, encode
from bgp.errors import (
    BgpError,
    CeaseSubcode,
    ErrorCode,
    FsmSubcode,
    Handling,
    MessageHeaderSubcode,
    OpenSubcode,
    RouteRefreshSubcode,
    UpdateSubcode,
    error_name,
)
from bgp.types import Afi, Negotiated, Safi

from .wire import MARKER, message

PLAIN = Negotiated()


def test_notification_known_answer() -> None:
    notification = Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0)
    wire = encode(notification, PLAIN)
    assert wire == MARKER + bytes.fromhex("0015 03 04 00")
    assert decode(wire, PLAIN) == notification


def test_notification_from_error_keeps_code_subcode_data() -> None:
    error = BgpError(
        ErrorCode.MESSAGE_HEADER_ERROR, MessageHeaderSubcode.BAD_MESSAGE_LENGTH, b"\x10\x01"
    )
    notification = Notification.from_error(error)
    assert encode(notification, PLAIN) == MARKER + bytes.fromhex("0017 03 01 02 1001")


def test_unknown_codes_are_kept() -> None:
    decoded = decode(message(3, b"\x09\x07abc"), PLAIN)
    assert decoded == Notification(9, 7, b"abc")
    assert "code 9/subcode 7" in str(decoded)


def test_shutdown_communication_round_trip() -> None:
    notification = Notification.cease(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, "upgrade — back in 5")
    wire = encode(notification, PLAIN)
    text = "upgrade — back in 5".encode()
    assert wire[19:] == bytes([6, 2, len(text)]) + text
    decoded = decode(wire, PLAIN)
    assert isinstance(decoded, Notification)
    assert decoded.shutdown_communication == "upgrade — back in 5"
    reset = Notification.cease(CeaseSubcode.ADMINISTRATIVE_RESET, "")
    assert reset.data == b"\x00" and reset.shutdown_communication == ""


def test_shutdown_communication_is_limited_to_255_octets_on_a_character_boundary() -> None:
    notification = Notification.cease(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, "é" * 200)
    assert notification.data[0] == 254  # 127 two-octet characters
    assert notification.shutdown_communication == "é" * 127


def test_cease_without_communication_for_other_subcodes() -> None:
    assert Notification.cease(CeaseSubcode.PEER_DE_CONFIGURED, "ignored").data == b""


@pytest.mark.parametrize("data", [b"\x05abc", b"\x02\xff\xfe", b""])
def test_malformed_shutdown_communication_is_none(data: bytes) -> None:
    notification = Notification(ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, data)
    assert notification.shutdown_communication is None
    assert decode(encode(notification, PLAIN), PLAIN) == notification


def test_error_names() -> None:
    assert (
        error_name(2, OpenSubcode.UNACCEPTABLE_HOLD_TIME)
        == "OPEN_MESSAGE_ERROR/UNACCEPTABLE_HOLD_TIME"
    )
    assert error_name(5, FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM).endswith("OPENCONFIRM")
    assert error_name(6, 99) == "CEASE/subcode 99"
    assert CeaseSubcode.ADMINISTRATIVE_RESET == 4 and CeaseSubcode.HARD_RESET == 9
    assert UpdateSubcode.MALFORMED_AS_PATH == 11
    assert RouteRefreshSubcode.INVALID_MESSAGE_LENGTH == 1


def test_bgp_error_equality_and_repr() -> None:
    a = BgpError(ErrorCode.CEASE, 2, b"x", handling=Handling.SESSION_RESET, reason="one")
    b = BgpError(ErrorCode.CEASE, 2, b"x", reason="two")
    assert a == b and hash(a) == hash(b)
    assert a != a.with_handling(Handling.TREAT_AS_WITHDRAW)
    assert "CEASE" in repr(a)


@pytest.mark.parametrize(
    ("refresh", "hex_body"),
    [
        (RouteRefresh(Afi.IPV4, Safi.UNICAST), "0001 00 01"),
        (RouteRefresh(Afi.IPV6, Safi.UNICAST, RouteRefreshSubtype.BEGIN), "0002 01 01"),
        (RouteRefresh(Afi.IPV6, Safi.UNICAST, RouteRefreshSubtype.END), "0002 02 01"),
        (RouteRefresh(25, 70, 7), "0019 07 46"),
    ],
)
def test_route_refresh_known_answers(refresh: RouteRefresh, hex_body: str) -> None:
    wire = encode(refresh, PLAIN)
    assert wire == message(5, bytes.fromhex(hex_body))
    assert len(wire) == 23
    assert decode(wire, PLAIN) == refresh


def test_route_refresh_family() -> None:
    assert RouteRefresh(2, 1).family == (Afi.IPV6, Safi.UNICAST)
    assert RouteRefresh(25, 70).family is None


@pytest.mark.parametrize("body", ["0002 01 01 00", "0002 02 01 0000"])
def test_borr_eorr_with_bad_length(body: str) -> None:
    wire = message(5, bytes.fromhex(body))
    with pytest.raises(BgpError) as info:
        decode(wire, PLAIN)
    assert info.value.code is ErrorCode.ROUTE_REFRESH_MESSAGE_ERROR
    assert info.value.subcode == RouteRefreshSubcode.INVALID_MESSAGE_LENGTH
    assert info.value.data == wire


def test_normal_route_refresh_ignores_trailing_orf_entries() -> None:
    decoded = decode(message(5, bytes.fromhex("0001 00 01 01 40 0003 aabbcc")), PLAIN)
    assert decoded == RouteRefresh(1, 1)
