"""RFC 6793: AS_TRANS / AS4_PATH / AS4_AGGREGATOR on 2-octet sessions, and reconciliation."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from bgp.codec import (
    Aggregator,
    AsPath,
    AsPathSegment,
    Origin,
    PathAttributes,
    SegmentType,
    Update,
    decode,
    encode,
)
from bgp.codec.attr_basic import merge_as4_path, reconcile_as4
from bgp.errors import Handling
from bgp.types import AS_TRANS

from .wire import (
    NEW_EBGP,
    NLRI_VIP,
    OLD_EBGP,
    OPTIONAL_TRANSITIVE,
    WELL_KNOWN,
    attr,
    next_hop,
    origin,
    update,
)

SEQ = SegmentType.AS_SEQUENCE
SET = SegmentType.AS_SET
CONFED = SegmentType.AS_CONFED_SEQUENCE
BIG = 4_200_000_000  # 0xFA56EA00


def path(*segments: tuple[SegmentType, list[int]]) -> AsPath:
    return AsPath(AsPathSegment(kind, asns) for kind, asns in segments)


def segments_2(*segments: tuple[int, list[int]]) -> bytes:
    return b"".join(
        bytes([kind, len(asns)]) + b"".join(a.to_bytes(2, "big") for a in asns)
        for kind, asns in segments
    )


def segments_4(*segments: tuple[int, list[int]]) -> bytes:
    return b"".join(
        bytes([kind, len(asns)]) + b"".join(a.to_bytes(4, "big") for a in asns)
        for kind, asns in segments
    )


def from_old_speaker(as_path: bytes, *extra: bytes) -> Update:
    raw = update(
        attributes=origin() + attr(WELL_KNOWN, 2, as_path) + next_hop() + b"".join(extra),
        nlri=NLRI_VIP,
    )
    message = decode(raw, OLD_EBGP)
    assert isinstance(message, Update)
    return message


def test_encoding_for_an_old_speaker_uses_as_trans_and_as4_path() -> None:
    attributes = PathAttributes(
        origin=Origin.IGP,
        as_path=AsPath.sequence([BIG, 65100]),
        next_hop=IPv4Address("192.168.80.252"),
        aggregator=Aggregator(BIG, IPv4Address("10.0.0.1")),
    )
    wire = encode(Update(attributes=attributes, nlri=[IPv4Network("198.51.100.0/24")]), OLD_EBGP)
    assert attr(WELL_KNOWN, 2, bytes.fromhex("02 02 5ba0 fe4c")) in wire
    assert attr(OPTIONAL_TRANSITIVE, 17, bytes.fromhex("02 02 fa56ea00 0000fe4c")) in wire
    assert attr(OPTIONAL_TRANSITIVE, 7, bytes.fromhex("5ba0 0a000001")) in wire
    assert attr(OPTIONAL_TRANSITIVE, 18, bytes.fromhex("fa56ea00 0a000001")) in wire
    # Between new speakers neither AS4 attribute is sent.
    new = encode(Update(attributes=attributes, nlri=[IPv4Network("198.51.100.0/24")]), NEW_EBGP)
    assert bytes([OPTIONAL_TRANSITIVE, 17]) not in new
    assert bytes([OPTIONAL_TRANSITIVE, 18]) not in new


def test_no_as4_path_when_every_as_fits_in_2_octets() -> None:
    attributes = PathAttributes(origin=Origin.IGP, as_path=AsPath.sequence([65101, 65100]))
    wire = encode(Update(attributes=attributes), OLD_EBGP)
    assert bytes([OPTIONAL_TRANSITIVE, 17]) not in wire


def test_old_speaker_prepending_keeps_its_leading_as() -> None:
    # A new speaker (AS 4200000000) announced "4200000000 65100"; an old speaker AS 65001
    # passed it on and prepended itself to AS_PATH only.
    message = from_old_speaker(
        segments_2((2, [65001, AS_TRANS, 65100])),
        attr(OPTIONAL_TRANSITIVE, 17, segments_4((2, [BIG, 65100]))),
    )
    assert message.attributes.as_path == AsPath.sequence([65001, BIG, 65100])
    assert message.errors == ()


def test_as4_path_longer_than_as_path_is_ignored() -> None:
    message = from_old_speaker(
        segments_2((2, [AS_TRANS])),
        attr(OPTIONAL_TRANSITIVE, 17, segments_4((2, [BIG, 65100]))),
    )
    assert message.attributes.as_path == AsPath.sequence([AS_TRANS])


def test_as_set_counts_as_one() -> None:
    as_path = path((SEQ, [65001, AS_TRANS]), (SET, [1, 2, 3]))
    as4_path = path((SEQ, [BIG]), (SET, [1, 2, 3]))
    assert merge_as4_path(as_path, as4_path) == path((SEQ, [65001, BIG]), (SET, [1, 2, 3]))


def test_leading_as_set_is_taken_whole() -> None:
    as_path = path((SET, [7, 8]), (SEQ, [AS_TRANS]))
    as4_path = path((SEQ, [BIG]))
    assert merge_as4_path(as_path, as4_path) == path((SET, [7, 8]), (SEQ, [BIG]))


def test_leading_confederation_segments_are_kept() -> None:
    message = from_old_speaker(
        segments_2((3, [64512, 64513]), (2, [AS_TRANS, 65100])),
        attr(OPTIONAL_TRANSITIVE, 17, segments_4((2, [BIG, 65100]))),
    )
    assert message.attributes.as_path == path((CONFED, [64512, 64513]), (SEQ, [BIG, 65100]))


def test_confederation_segments_in_as4_path_are_dropped() -> None:
    message = from_old_speaker(
        segments_2((2, [AS_TRANS])),
        attr(OPTIONAL_TRANSITIVE, 17, segments_4((3, [64512]), (2, [BIG]))),
    )
    assert message.attributes.as_path == AsPath.sequence([BIG])


def test_aggregator_as_trans_takes_as4_aggregator() -> None:
    message = from_old_speaker(
        segments_2((2, [AS_TRANS])),
        attr(OPTIONAL_TRANSITIVE, 7, bytes.fromhex("5ba0 0a000001")),
        attr(OPTIONAL_TRANSITIVE, 17, segments_4((2, [BIG]))),
        attr(OPTIONAL_TRANSITIVE, 18, bytes.fromhex("fa56ea00 0a000001")),
    )
    assert message.attributes.aggregator == Aggregator(BIG, IPv4Address("10.0.0.1"))
    assert message.attributes.as_path == AsPath.sequence([BIG])


def test_aggregator_not_as_trans_makes_both_as4_attributes_ignored() -> None:
    message = from_old_speaker(
        segments_2((2, [65001, AS_TRANS])),
        attr(OPTIONAL_TRANSITIVE, 7, bytes.fromhex("fde9 0a000001")),
        attr(OPTIONAL_TRANSITIVE, 17, segments_4((2, [BIG]))),
        attr(OPTIONAL_TRANSITIVE, 18, bytes.fromhex("fa56ea00 0a000001")),
    )
    assert message.attributes.aggregator == Aggregator(65001, IPv4Address("10.0.0.1"))
    assert message.attributes.as_path == AsPath.sequence([65001, AS_TRANS])


def test_as4_aggregator_without_aggregator_is_ignored() -> None:
    aggregator, as4 = None, Aggregator(BIG, IPv4Address("10.0.0.1"))
    assert reconcile_as4(AsPath.sequence([1]), aggregator, None, as4) == (
        AsPath.sequence([1]),
        None,
    )


def test_malformed_as4_path_is_discarded() -> None:
    message = from_old_speaker(
        segments_2((2, [65001, AS_TRANS])),
        attr(OPTIONAL_TRANSITIVE, 17, bytes.fromhex("02 01 fa56ea")),  # 3-octet AS
    )
    assert message.attributes.as_path == AsPath.sequence([65001, AS_TRANS])
    assert [e.handling for e in message.errors] == [Handling.ATTRIBUTE_DISCARD]
    assert not message.treat_as_withdraw


def test_as4_aggregator_bad_length_and_flags_are_discarded() -> None:
    message = from_old_speaker(
        segments_2((2, [65001])),
        attr(OPTIONAL_TRANSITIVE, 18, bytes.fromhex("fa56ea00 0a00")),
        attr(WELL_KNOWN, 17, segments_4((2, [BIG]))),
    )
    assert [e.handling for e in message.errors] == [Handling.ATTRIBUTE_DISCARD] * 2
    assert message.attributes.as_path == AsPath.sequence([65001])


def test_new_speaker_ignores_as4_attributes() -> None:
    raw = update(
        attributes=origin()
        + attr(WELL_KNOWN, 2, segments_4((2, [65101, BIG])))
        + next_hop()
        + attr(OPTIONAL_TRANSITIVE, 17, segments_4((2, [1, 2, 3])))
        + attr(OPTIONAL_TRANSITIVE, 18, b"junk"),
        nlri=NLRI_VIP,
    )
    message = decode(raw, NEW_EBGP)
    assert isinstance(message, Update)
    assert message.attributes.as_path == AsPath.sequence([65101, BIG])
    assert message.errors == ()


def test_long_4_octet_path_round_trips_through_an_old_session() -> None:
    long_path = AsPath.sequence([BIG + i for i in range(300)])
    attributes = PathAttributes(
        origin=Origin.IGP, as_path=long_path, next_hop=IPv4Address("192.168.80.252")
    )
    message = Update(attributes=attributes, nlri=[IPv4Network("198.51.100.0/24")])
    decoded = decode(encode(message, OLD_EBGP), OLD_EBGP)
    assert decoded == message
