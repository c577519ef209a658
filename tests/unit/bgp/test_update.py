"""UPDATE round trips for every attribute and both AS sizes, IPv4 and IPv6, End-of-RIB."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import attrs
import pytest

from bgp.codec import (
    AsPath,
    AsPathSegment,
    LargeCommunity,
    MpReachNlri,
    MpUnreachNlri,
    SegmentType,
    UnknownAttribute,
    Update,
    WellKnownCommunity,
    community,
    decode,
    encode,
    end_of_rib,
    end_of_rib_family,
    format_community,
    is_end_of_rib,
    parse_community,
)
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Negotiated, Safi

from .samples import BASE, IBGP_ONLY, VARIANTS, corpus, seg
from .wire import (
    EXTENDED,
    MARKER,
    NEW_EBGP,
    NEW_IBGP,
    NLRI_VIP,
    OLD_EBGP,
    OLD_IBGP,
    OPTIONAL,
    OPTIONAL_TRANSITIVE,
    attr,
    mandatory,
    update,
)

VIP = IPv4Network("198.51.100.0/24")
VIP6 = IPv6Network("2001:db8:100::/48")


def round_trip(message: Update, negotiated: Negotiated) -> Update:
    wire = encode(message, negotiated)
    decoded = decode(wire, negotiated)
    assert isinstance(decoded, Update)
    assert decoded.errors == ()
    assert encode(decoded, negotiated) == wire
    return decoded


@pytest.mark.parametrize(
    "negotiated",
    [OLD_IBGP, NEW_IBGP, OLD_EBGP, NEW_EBGP],
    ids=["2-octet-ibgp", "4-octet-ibgp", "2-octet-ebgp", "4-octet-ebgp"],
)
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_attribute_round_trip(name: str, negotiated: Negotiated) -> None:
    attributes = VARIANTS[name]
    if negotiated.ebgp and name in IBGP_ONLY:
        attributes = attrs.evolve(attributes, local_pref=None, originator_id=None, cluster_list=())
    message = Update(withdrawn=[IPv4Network("203.0.113.0/24")], attributes=attributes, nlri=[VIP])
    assert round_trip(message, negotiated) == message


@pytest.mark.parametrize(("negotiated", "wire"), corpus())
def test_every_sample_message_round_trips(negotiated: Negotiated, wire: bytes) -> None:
    assert encode(decode(wire, negotiated), negotiated) == wire


def test_ebgp_encoding_leaves_out_ibgp_attributes() -> None:
    attributes = VARIANTS["everything"]
    decoded = round_trip(Update(attributes=attributes, nlri=[VIP]), NEW_EBGP)
    assert decoded.attributes == attrs.evolve(
        attributes, local_pref=None, originator_id=None, cluster_list=()
    )


def test_attributes_are_ordered_by_type_code_with_mp_first() -> None:
    message = Update(
        attributes=VARIANTS["everything"],
        mp_unreach=MpUnreachNlri(Afi.IPV6, Safi.UNICAST, [VIP6]),
        mp_reach=MpReachNlri(Afi.IPV6, Safi.UNICAST, IPv6Address("2001:db8::1"), [VIP6]),
    )
    wire = encode(message, NEW_IBGP)
    block = wire[23 : 23 + int.from_bytes(wire[21:23], "big")]
    codes = []
    pos = 0
    while pos < len(block):
        header = 4 if block[pos] & 0x10 else 3
        codes.append(block[pos + 1])
        pos += header + int.from_bytes(block[pos + 2 : pos + header], "big")
    assert codes == [15, 14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 250]


def test_extended_length_flag_for_long_attributes() -> None:
    message = Update(attributes=attrs.evolve(BASE, communities=range(64)), nlri=[VIP])
    wire = encode(message, NEW_EBGP)
    assert bytes([0xD0, 8, 0x01, 0x00]) in wire  # optional transitive + extended length, 256
    short = encode(
        Update(attributes=attrs.evolve(BASE, communities=range(63)), nlri=[VIP]), NEW_EBGP
    )
    assert bytes([0xC0, 8, 252]) in short
    # An extended length on a short attribute is accepted on receipt.
    raw = update(attributes=mandatory() + attr(0xD0, 8, b"\x00\x00\x00\x01"), nlri=NLRI_VIP)
    decoded = decode(raw, OLD_EBGP)
    assert isinstance(decoded, Update)
    assert decoded.attributes.communities == (1,) and not decoded.errors


def test_ipv6_mp_reach_and_unreach_round_trip() -> None:
    for link_local in (None, IPv6Address("fe80::1")):
        reach = MpReachNlri(
            Afi.IPV6,
            Safi.UNICAST,
            IPv6Address("2001:db8::252"),
            [VIP6, IPv6Network("::/0"), IPv6Network("2001:db8::1/128")],
            link_local,
        )
        unreach = MpUnreachNlri(Afi.IPV6, Safi.UNICAST, [IPv6Network("2001:db8:200::/40")])
        attributes = attrs.evolve(BASE, next_hop=None)
        for negotiated in (OLD_EBGP, NEW_IBGP):
            message = Update(attributes=attributes, mp_reach=reach, mp_unreach=unreach)
            decoded = round_trip(message, negotiated)
            assert decoded == message
            assert decoded.announced_all() == list(reach.nlri)
            assert decoded.withdrawn_all() == list(unreach.withdrawn)


def test_ipv4_in_mp_reach_round_trips() -> None:
    reach = MpReachNlri(Afi.IPV4, Safi.UNICAST, IPv4Address("192.168.80.252"), [VIP])
    message = Update(attributes=attrs.evolve(BASE, next_hop=None), mp_reach=reach)
    assert round_trip(message, NEW_EBGP) == message


def test_ipv6_next_hop_with_link_local_known_answer() -> None:
    reach = MpReachNlri(
        Afi.IPV6, Safi.UNICAST, IPv6Address("2001:db8::1"), [VIP6], IPv6Address("fe80::1")
    )
    wire = encode(Update(attributes=attrs.evolve(BASE, next_hop=None), mp_reach=reach), NEW_EBGP)
    value = (
        bytes.fromhex("0002 01 20")
        + IPv6Address("2001:db8::1").packed
        + IPv6Address("fe80::1").packed
        + b"\x00"
        + bytes([48])
        + VIP6.network_address.packed[:6]
    )
    assert attr(OPTIONAL, 14, value) in wire


def test_extended_message_carries_big_updates() -> None:
    nlri = [IPv4Network((0x0A000000 + (i << 8), 24)) for i in range(2000)]
    message = Update(attributes=BASE, nlri=nlri)
    with pytest.raises(ValueError, match="exceeds 4096"):
        encode(message, NEW_IBGP)
    wire = encode(message, EXTENDED)
    assert len(wire) > 8000
    assert round_trip(message, EXTENDED) == message


def test_prefix_encoding_known_answer() -> None:
    nlri = [IPv4Network("0.0.0.0/0"), IPv4Network("10.0.0.0/8"), IPv4Network("198.51.100.128/25")]
    wire = encode(Update(attributes=BASE, nlri=nlri), NEW_EBGP)
    assert wire.endswith(bytes.fromhex("00 08 0a 19 c6 33 64 80"))


def test_trailing_host_bits_are_cleared() -> None:
    decoded = decode(update(attributes=mandatory(), nlri=bytes([23, 198, 51, 101])), OLD_EBGP)
    assert isinstance(decoded, Update)
    assert decoded.nlri == (IPv4Network("198.51.100.0/23"),)


def test_end_of_rib_ipv4_known_answer() -> None:
    wire = encode(end_of_rib(IPV4_UNICAST), NEW_EBGP)
    assert wire == MARKER + bytes.fromhex("0017 02 0000 0000")
    assert len(wire) == 23
    decoded = decode(wire, NEW_EBGP)
    assert isinstance(decoded, Update)
    assert is_end_of_rib(decoded) and end_of_rib_family(decoded) == IPV4_UNICAST


def test_end_of_rib_ipv6_known_answer() -> None:
    wire = MARKER + bytes.fromhex("001d 02 0000 0006 800f03 0002 01")
    assert encode(end_of_rib(IPV6_UNICAST), NEW_EBGP) == wire
    decoded = decode(wire, NEW_EBGP)
    assert isinstance(decoded, Update)
    assert end_of_rib_family(decoded) == IPV6_UNICAST


def test_not_end_of_rib() -> None:
    assert not is_end_of_rib(Update(withdrawn=[VIP]))
    assert not is_end_of_rib(Update(mp_unreach=MpUnreachNlri(Afi.IPV6, Safi.UNICAST, [VIP6])))
    assert not is_end_of_rib(Update(attributes=BASE))


def test_unknown_optional_transitive_kept_with_partial_bit() -> None:
    raw = update(attributes=mandatory() + attr(OPTIONAL_TRANSITIVE, 99, b"hello"), nlri=NLRI_VIP)
    decoded = decode(raw, OLD_EBGP)
    assert isinstance(decoded, Update)
    assert decoded.attributes.unknown == (UnknownAttribute(99, 0xE0, b"hello"),)
    assert decoded.attributes.unknown[0].partial
    assert attr(0xE0, 99, b"hello") in encode(decoded, OLD_EBGP)


def test_unknown_optional_non_transitive_is_dropped() -> None:
    raw = update(attributes=mandatory() + attr(OPTIONAL, 98, b"zz"), nlri=NLRI_VIP)
    decoded = decode(raw, OLD_EBGP)
    assert isinstance(decoded, Update)
    assert decoded.attributes.unknown == () and decoded.errors == ()


def test_withdrawn_and_announced_helpers() -> None:
    message = Update(
        withdrawn=[IPv4Network("203.0.113.0/24")],
        attributes=BASE,
        nlri=[VIP],
        mp_reach=MpReachNlri(Afi.IPV6, Safi.UNICAST, IPv6Address("2001:db8::1"), [VIP6]),
        mp_unreach=MpUnreachNlri(Afi.IPV6, Safi.UNICAST, [IPv6Network("2001:db8:9::/48")]),
    )
    assert message.announced_all() == [VIP, VIP6]
    assert message.withdrawn_all() == [
        IPv4Network("203.0.113.0/24"),
        IPv6Network("2001:db8:9::/48"),
    ]
    withdrawn = attrs.evolve(message, treat_as_withdraw=True)
    assert withdrawn.announced_all() == []
    assert withdrawn.withdrawn_all() == [
        IPv4Network("203.0.113.0/24"),
        IPv6Network("2001:db8:9::/48"),
        VIP,
        VIP6,
    ]


def test_community_helpers() -> None:
    assert format_community(community(65100, 7)) == "65100:7"
    assert format_community(0xFFFFFF01) == "NO_EXPORT"
    assert parse_community("no-export") == WellKnownCommunity.NO_EXPORT
    assert parse_community("65100:7") == community(65100, 7)
    assert str(LargeCommunity.parse("4200000000:1:2")) == "4200000000:1:2"
    with pytest.raises(ValueError):
        parse_community("65100")


def test_as_path_helpers() -> None:
    path = AsPath(
        [seg(SegmentType.AS_CONFED_SEQUENCE, 64512), seg(SegmentType.AS_SEQUENCE, 65101, 1)]
    )
    assert path.first_asn() == 65101
    assert path.length() == 2
    assert str(path.prepend(65100, 2)) == "65100 65100 (64512) 65101 1"
    assert str(AsPath.sequence([1]).prepend(2)) == "2 1"
    assert AsPath([seg(SegmentType.AS_SET, 1)]).first_asn() is None
    assert [len(s.asns) for s in AsPath.sequence(range(600)).segments] == [255, 255, 90]
    with pytest.raises(ValueError):
        AsPathSegment(SegmentType.AS_SEQUENCE, ())
