"""OPEN encoding, capabilities, RFC 9072 parameters, validation and negotiation."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from bgp.codec import (
    Capability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    FourOctetAsCapability,
    GracefulRestartCapability,
    GracefulRestartFamily,
    MultiprotocolCapability,
    Open,
    OptionalParameter,
    RouteRefreshCapability,
    UnknownCapability,
    decode,
    encode,
    negotiate,
    validate_open,
)
from bgp.codec.capabilities import decode_capabilities, encode_capability
from bgp.errors import BgpError, ErrorCode, OpenSubcode
from bgp.types import AS_TRANS, IPV4_UNICAST, IPV6_UNICAST, Afi, Negotiated, Safi

from .wire import message

PLAIN = Negotiated()
ROUTER_ID = IPv4Address("192.168.80.252")

# An OPEN from AS 4200000000: My AS = AS_TRANS (0x5ba0), hold time 180, identifier 10.0.0.1,
# one Capabilities parameter: MP IPv4 unicast, 4-octet AS (code 65), route refresh.
OPEN_AS4 = message(
    1,
    bytes.fromhex("04 5ba0 00b4 0a000001 10")
    + bytes.fromhex("02 0e")
    + bytes.fromhex("01 04 0001 00 01")
    + bytes.fromhex("41 04 fa56ea00")
    + bytes.fromhex("02 00"),
)


def test_open_with_four_octet_as_known_answer() -> None:
    expected = Open(
        AS_TRANS,
        180,
        IPv4Address("10.0.0.1"),
        [
            MultiprotocolCapability(Afi.IPV4, Safi.UNICAST),
            FourOctetAsCapability(4_200_000_000),
            RouteRefreshCapability(),
        ],
    )
    assert len(OPEN_AS4) == 45
    assert decode(OPEN_AS4, PLAIN) == expected
    assert encode(expected, PLAIN) == OPEN_AS4
    assert expected.asn == 4_200_000_000


def test_for_speaker_uses_as_trans_only_above_65535() -> None:
    big = Open.for_speaker(4_200_000_000, 90, ROUTER_ID)
    small = Open.for_speaker(65100, 90, ROUTER_ID, [FourOctetAsCapability(1)])
    assert big.my_as == AS_TRANS and big.asn == 4_200_000_000
    assert small.my_as == 65100 and small.capabilities == (FourOctetAsCapability(65100),)


ALL_CAPABILITIES: list[Capability] = [
    MultiprotocolCapability(Afi.IPV4, Safi.UNICAST),
    MultiprotocolCapability(Afi.IPV6, Safi.UNICAST),
    MultiprotocolCapability(25, 70),  # L2VPN EVPN: not carried, but kept
    RouteRefreshCapability(),
    EnhancedRouteRefreshCapability(),
    ExtendedMessageCapability(),
    FourOctetAsCapability(65100),
    GracefulRestartCapability(
        restart_time=120,
        restart_state=True,
        notification=True,
        families=[
            GracefulRestartFamily(Afi.IPV4, Safi.UNICAST, forwarding_preserved=True),
            GracefulRestartFamily(Afi.IPV6, Safi.UNICAST),
        ],
    ),
    GracefulRestartCapability(),
    UnknownCapability(128, b""),
    UnknownCapability(73, b"\x05node1"),
]


@pytest.mark.parametrize("capability", ALL_CAPABILITIES, ids=repr)
def test_capability_round_trip(capability: Capability) -> None:
    tlv = encode_capability(capability)
    assert decode_capabilities(tlv) == [capability]
    message = Open(65100, 90, ROUTER_ID, [capability])
    assert decode(encode(message, PLAIN), PLAIN) == message


def test_graceful_restart_known_answer() -> None:
    cap = GracefulRestartCapability(
        restart_time=120,
        restart_state=True,
        families=[GracefulRestartFamily(Afi.IPV4, Safi.UNICAST, forwarding_preserved=True)],
    )
    # R bit + 120 s = 0x8078; AFI 1, SAFI 1, F bit.
    assert encode_capability(cap) == bytes.fromhex("40 06 8078 0001 01 80")
    with_n = GracefulRestartCapability(restart_time=4095, notification=True)
    assert encode_capability(with_n) == bytes.fromhex("40 02 4fff")


def test_open_with_every_capability_round_trips() -> None:
    message = Open(65100, 0, ROUTER_ID, ALL_CAPABILITIES)
    assert decode(encode(message, PLAIN), PLAIN) == message


def test_capabilities_spread_over_several_parameters_are_flattened() -> None:
    body = bytes.fromhex("04 fe4c 005a c0a850fc 0c 02 02 0200 02 06 4104 0000fe4c")
    decoded = decode(message(1, body), PLAIN)
    assert isinstance(decoded, Open)
    assert decoded.capabilities == (RouteRefreshCapability(), FourOctetAsCapability(65100))


def test_extended_optional_parameters_rfc9072() -> None:
    caps = [UnknownCapability(200 + i, bytes([i]) * 40) for i in range(8)]  # 336 octets
    opened = Open(65100, 90, ROUTER_ID, caps)
    wire = encode(opened, PLAIN)
    body = wire[19:]
    assert body[9] == 255 and body[10] == 255  # Non-Ext OP Len / Non-Ext OP Type
    assert int.from_bytes(body[11:13], "big") == len(body) - 13
    assert body[13] == 2 and int.from_bytes(body[14:16], "big") == 8 * 42
    assert decode(wire, PLAIN) == opened
    # A small OPEN may use the extended format too.
    small = bytes.fromhex("04 fe4c 005a c0a850fc ff ff 0005 02 0002 0200")
    decoded = decode(message(1, small), PLAIN)
    assert isinstance(decoded, Open) and decoded.capabilities == (RouteRefreshCapability(),)


def open_error(body: bytes) -> BgpError:
    with pytest.raises(BgpError) as info:
        decode(message(1, body), PLAIN)
    assert info.value.code is ErrorCode.OPEN_MESSAGE_ERROR
    return info.value


def test_unsupported_version_number_carries_version_4() -> None:
    error = open_error(bytes.fromhex("03 fe4c 005a c0a850fc 00"))
    assert error.subcode == OpenSubcode.UNSUPPORTED_VERSION_NUMBER
    assert error.data == b"\x00\x04"


@pytest.mark.parametrize(
    "body",
    [
        "04 fe4c 005a c0a850fc 05 0203 0200",  # parameters shorter than announced
        "04 fe4c 005a c0a850fc 02 0203",  # parameter overruns
        "04 fe4c 005a c0a850fc 03 0201 02",  # capability header truncated
        "04 fe4c 005a c0a850fc 04 0202 4102",  # 4-octet AS capability of length 2
        "04 fe4c 005a c0a850fc 05 0203 020100",  # route refresh with a value
        "04 fe4c 005a c0a850fc ff ff 00",  # extended length truncated
        "04 fe4c 005a c0a850fc ff ff 0009 02 0002 0200",  # extended length mismatch
    ],
)
def test_malformed_open_parameters(body: str) -> None:
    assert open_error(bytes.fromhex(body)).subcode == OpenSubcode.UNSPECIFIC


def validate_error(opened: Open, expected: int | None = None, **kwargs: object) -> BgpError:
    with pytest.raises(BgpError) as info:
        validate_open(opened, expected, **kwargs)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.OPEN_MESSAGE_ERROR
    return info.value


def test_validate_open_accepts_a_good_open() -> None:
    validate_open(Open.for_speaker(65101, 90, ROUTER_ID), 65101)
    validate_open(Open.for_speaker(65101, 0, ROUTER_ID), None)
    validate_open(Open.for_speaker(65101, 3, ROUTER_ID), None)


def test_validate_open_bad_peer_as() -> None:
    assert validate_error(Open.for_speaker(65102, 90, ROUTER_ID), 65101).subcode == (
        OpenSubcode.BAD_PEER_AS
    )
    assert validate_error(Open(0, 90, ROUTER_ID)).subcode == OpenSubcode.BAD_PEER_AS
    assert validate_error(Open(AS_TRANS, 90, ROUTER_ID)).subcode == OpenSubcode.BAD_PEER_AS
    # A 4-octet AS is checked against the capability, not My AS.
    validate_open(Open.for_speaker(4_200_000_000, 90, ROUTER_ID), 4_200_000_000)
    wrong = Open.for_speaker(4_200_000_000, 90, ROUTER_ID)
    assert validate_error(wrong, AS_TRANS).subcode == OpenSubcode.BAD_PEER_AS


def test_validate_open_bad_bgp_identifier() -> None:
    zero = Open.for_speaker(65101, 90, IPv4Address(0))
    assert validate_error(zero).subcode == OpenSubcode.BAD_BGP_IDENTIFIER
    same = Open.for_speaker(65100, 90, ROUTER_ID)
    error = validate_error(same, 65100, local_identifier=ROUTER_ID, local_asn=65100)
    assert error.subcode == OpenSubcode.BAD_BGP_IDENTIFIER
    validate_open(same, 65100, local_identifier=ROUTER_ID, local_asn=65101)  # eBGP: allowed


def test_validate_open_unsupported_optional_parameter() -> None:
    body = bytes.fromhex("04 fe4d 005a c0a850fd 04 0102 abcd")
    decoded = decode(message(1, body), PLAIN)
    assert isinstance(decoded, Open)
    assert decoded.parameters == (OptionalParameter(1, b"\xab\xcd"),)
    assert encode(decoded, PLAIN) == message(1, body)
    assert validate_error(decoded).subcode == OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER


@pytest.mark.parametrize("hold_time", [1, 2])
def test_validate_open_unacceptable_hold_time(hold_time: int) -> None:
    error = validate_error(Open.for_speaker(65101, hold_time, ROUTER_ID))
    assert error.subcode == OpenSubcode.UNACCEPTABLE_HOLD_TIME


def test_validate_open_unsupported_capability_lists_the_missing_ones() -> None:
    peer = Open(65101, 90, ROUTER_ID, [MultiprotocolCapability(Afi.IPV4, Safi.UNICAST)])
    required: list[Capability] = [
        MultiprotocolCapability(Afi.IPV4, Safi.UNICAST),
        MultiprotocolCapability(Afi.IPV6, Safi.UNICAST),
        FourOctetAsCapability(0),
    ]
    error = validate_error(peer, required_capabilities=required)
    assert error.subcode == OpenSubcode.UNSUPPORTED_CAPABILITY
    assert error.data == bytes.fromhex("01 04 0002 00 01") + bytes.fromhex("41 04 00000000")
    validate_open(peer, None, required_capabilities=required[:1])


def test_negotiate_both_sides() -> None:
    local = Open.for_speaker(
        65100,
        90,
        ROUTER_ID,
        [
            MultiprotocolCapability(Afi.IPV4, Safi.UNICAST),
            MultiprotocolCapability(Afi.IPV6, Safi.UNICAST),
            RouteRefreshCapability(),
            EnhancedRouteRefreshCapability(),
            ExtendedMessageCapability(),
        ],
    )
    peer = Open.for_speaker(
        65101,
        30,
        IPv4Address("192.168.80.254"),
        [
            MultiprotocolCapability(Afi.IPV6, Safi.UNICAST),
            MultiprotocolCapability(25, 70),
            RouteRefreshCapability(),
            ExtendedMessageCapability(),
        ],
    )
    assert negotiate(local, peer, 65100) == Negotiated(
        four_octet_as=True,
        extended_message=True,
        families=frozenset({IPV6_UNICAST}),
        local_asn=65100,
        peer_asn=65101,
        ebgp=True,
        hold_time=30,
        route_refresh=True,
        enhanced_route_refresh=False,
    )


def test_negotiate_old_speaker_without_capabilities() -> None:
    local = Open.for_speaker(65100, 90, ROUTER_ID, [MultiprotocolCapability(1, 1)])
    peer = Open(65100, 180, IPv4Address("192.168.80.253"))
    negotiated = negotiate(local, peer, 65100)
    assert not negotiated.four_octet_as and not negotiated.extended_message
    assert negotiated.families == frozenset({IPV4_UNICAST})  # RFC 4760 §8 default
    assert not negotiated.ebgp and negotiated.peer_asn == 65100
