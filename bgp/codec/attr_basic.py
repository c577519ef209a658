"""The RFC 4271 path attributes plus the RFC 6793 AS4 pair and the RFC 4456 reflection pair.

Each ``decode_*`` takes the attribute *value* and raises `BgpError` carrying the RFC 7606 §7
handling for that attribute (the attribute-block parser adds the raw attribute as data);
each ``encode_*`` returns the value. AS numbers inside `AsPath`/`Aggregator` are always the real
(4-octet) ones: on a 2-octet session the encoder substitutes AS_TRANS and emits AS4_PATH /
AS4_AGGREGATOR, and the decoder folds them back with `reconcile_as4` (RFC 6793 §4.2.3).

AS_PATH value, a run of segments (AS numbers are 2 or 4 octets):

    +-----------------+-----------------+---------------------------+
    | Segment Type(1) | Segment Len (1) | Len x AS number           |
    +-----------------+-----------------+---------------------------+
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import IntEnum
from ipaddress import IPv4Address

import attrs

from bgp.errors import BgpError, ErrorCode, Handling, UpdateSubcode
from bgp.types import AS_TRANS, MAX_ASN

MAX_SEGMENT_ASNS = 255


class Origin(IntEnum):
    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class SegmentType(IntEnum):
    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3  # RFC 5065
    AS_CONFED_SET = 4  # RFC 5065


CONFED_SEGMENTS = frozenset({SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET})
_SEGMENT_TYPES = {t.value: t for t in SegmentType}


def _asn_tuple(asns: Iterable[int]) -> tuple[int, ...]:
    return tuple(asns)


def _check_asns(
    _instance: object, _attribute: attrs.Attribute[tuple[int, ...]], asns: tuple[int, ...]
) -> None:
    if not 1 <= len(asns) <= MAX_SEGMENT_ASNS:
        raise ValueError(f"an AS_PATH segment holds 1..255 AS numbers, not {len(asns)}")
    if any(not 0 <= asn <= MAX_ASN for asn in asns):
        raise ValueError("AS number outside 0..4294967295")


@attrs.frozen
class AsPathSegment:
    type: SegmentType
    asns: tuple[int, ...] = attrs.field(converter=_asn_tuple, validator=_check_asns)

    def count(self) -> int:
        """Contribution to the path length (RFC 4271 §9.1.2.2; confed segments count 0)."""
        if self.type in CONFED_SEGMENTS:
            return 0
        return 1 if self.type is SegmentType.AS_SET else len(self.asns)

    def __str__(self) -> str:
        inner = " ".join(str(asn) for asn in self.asns)
        return {
            SegmentType.AS_SEQUENCE: inner,
            SegmentType.AS_SET: f"{{{inner}}}",
            SegmentType.AS_CONFED_SEQUENCE: f"({inner})",
            SegmentType.AS_CONFED_SET: f"[{inner}]",
        }[self.type]


def _segment_tuple(segments: Iterable[AsPathSegment]) -> tuple[AsPathSegment, ...]:
    return tuple(segments)


@attrs.frozen
class AsPath:
    segments: tuple[AsPathSegment, ...] = attrs.field(default=(), converter=_segment_tuple)

    @classmethod
    def sequence(cls, asns: Iterable[int]) -> AsPath:
        """An AS_PATH of AS_SEQUENCE segments (split every 255 AS numbers)."""
        flat = list(asns)
        return cls(
            AsPathSegment(SegmentType.AS_SEQUENCE, flat[i : i + MAX_SEGMENT_ASNS])
            for i in range(0, len(flat), MAX_SEGMENT_ASNS)
        )

    def length(self) -> int:
        return sum(segment.count() for segment in self.segments)

    def asns(self) -> Iterator[int]:
        for segment in self.segments:
            yield from segment.asns

    def first_asn(self) -> int | None:
        """Leftmost AS of a leading AS_SEQUENCE (for the eBGP first-AS check), else None."""
        for segment in self.segments:
            if segment.type in CONFED_SEGMENTS:
                continue
            return segment.asns[0] if segment.type is SegmentType.AS_SEQUENCE else None
        return None

    def prepend(self, asn: int, count: int = 1) -> AsPath:
        """``asn`` added ``count`` times to the front, merged into a leading AS_SEQUENCE."""
        if count <= 0:
            return self
        head: list[int] = [asn] * count
        rest = list(self.segments)
        if rest and rest[0].type is SegmentType.AS_SEQUENCE:
            head.extend(rest.pop(0).asns)
        return AsPath((*AsPath.sequence(head).segments, *rest))

    def __str__(self) -> str:
        return " ".join(str(segment) for segment in self.segments)


@attrs.frozen
class Aggregator:
    asn: int
    address: IPv4Address


def _error(subcode: UpdateSubcode, handling: Handling, reason: str) -> BgpError:
    return BgpError(ErrorCode.UPDATE_MESSAGE_ERROR, subcode, handling=handling, reason=reason)


def _length_error(name: str, value: bytes, want: str, handling: Handling) -> BgpError:
    return _error(
        UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
        handling,
        f"{name} length {len(value)}, expected {want}",
    )


# --- ORIGIN (RFC 7606 §7.1: bad length or value → treat-as-withdraw) ---------------------------


def encode_origin(origin: Origin) -> bytes:
    return bytes([origin])


def decode_origin(value: bytes) -> Origin:
    if len(value) != 1:
        raise _length_error("ORIGIN", value, "1", Handling.TREAT_AS_WITHDRAW)
    if value[0] > Origin.INCOMPLETE:
        raise _error(
            UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE,
            Handling.TREAT_AS_WITHDRAW,
            f"ORIGIN value {value[0]}",
        )
    return Origin(value[0])


# --- AS_PATH / AS4_PATH (RFC 7606 §7.2; RFC 6793 §6; RFC 7607) ---------------------------------


def encode_as_path(path: AsPath, four_octet: bool) -> bytes:
    """AS_PATH value; on a 2-octet session AS numbers above 65535 become AS_TRANS."""
    size = 4 if four_octet else 2
    out = bytearray()
    for segment in path.segments:
        out += bytes([segment.type, len(segment.asns)])
        for asn in segment.asns:
            out += (asn if four_octet or asn <= 0xFFFF else AS_TRANS).to_bytes(size, "big")
    return bytes(out)


def _parse_segments(value: bytes, size: int) -> list[AsPathSegment] | str:
    """Segments, or the reason the value is malformed (RFC 7606 §7.2)."""
    segments: list[AsPathSegment] = []
    pos = 0
    while pos < len(value):
        if pos + 2 > len(value):
            return "a lone octet after the last segment"
        kind, count = value[pos], value[pos + 1]
        segment_type = _SEGMENT_TYPES.get(kind)
        if segment_type is None:
            return f"unknown segment type {kind}"
        if count == 0:
            return "empty segment"
        end = pos + 2 + count * size
        if end > len(value):
            return "segment overruns the attribute"
        asns = [int.from_bytes(value[i : i + size], "big") for i in range(pos + 2, end, size)]
        segments.append(AsPathSegment(segment_type, asns))
        pos = end
    return segments


def decode_as_path(value: bytes, four_octet: bool) -> AsPath:
    parsed = _parse_segments(value, 4 if four_octet else 2)
    if isinstance(parsed, str):
        raise _error(UpdateSubcode.MALFORMED_AS_PATH, Handling.TREAT_AS_WITHDRAW, parsed)
    path = AsPath(parsed)
    if 0 in path.asns():
        raise _error(UpdateSubcode.MALFORMED_AS_PATH, Handling.TREAT_AS_WITHDRAW, "AS 0 in AS_PATH")
    return path


def needs_as4_path(path: AsPath) -> bool:
    """Whether a 2-octet session must carry AS4_PATH for ``path`` (RFC 6793 §4.2.2)."""
    return any(
        asn > 0xFFFF
        for segment in path.segments
        if segment.type not in CONFED_SEGMENTS
        for asn in segment.asns
    )


def encode_as4_path(path: AsPath) -> bytes:
    """AS4_PATH value: 4-octet AS numbers, confederation segments left out (RFC 6793 §3)."""
    kept = AsPath(s for s in path.segments if s.type not in CONFED_SEGMENTS)
    return encode_as_path(kept, four_octet=True)


def decode_as4_path(value: bytes) -> AsPath:
    """Malformed AS4_PATH → attribute discard; confed segments are dropped (RFC 6793 §6)."""
    parsed = _parse_segments(value, 4)
    if isinstance(parsed, str):
        raise _error(
            UpdateSubcode.MALFORMED_AS_PATH, Handling.ATTRIBUTE_DISCARD, f"AS4_PATH: {parsed}"
        )
    path = AsPath(s for s in parsed if s.type not in CONFED_SEGMENTS)
    if 0 in path.asns():
        raise _error(
            UpdateSubcode.MALFORMED_AS_PATH, Handling.ATTRIBUTE_DISCARD, "AS 0 in AS4_PATH"
        )
    return path


# --- NEXT_HOP (RFC 7606 §7.3: bad length → treat-as-withdraw; RFC 4271 §6.3 semantics) ----------


def encode_next_hop(address: IPv4Address) -> bytes:
    return address.packed


def decode_next_hop(value: bytes) -> IPv4Address:
    if len(value) != 4:
        raise _length_error("NEXT_HOP", value, "4", Handling.TREAT_AS_WITHDRAW)
    address = IPv4Address(value)
    if address.is_unspecified or address.is_multicast or address == IPv4Address("255.255.255.255"):
        raise _error(
            UpdateSubcode.INVALID_NEXT_HOP_ATTRIBUTE,
            Handling.TREAT_AS_WITHDRAW,
            f"NEXT_HOP {address} is not a unicast address",
        )
    return address


# --- MULTI_EXIT_DISC, LOCAL_PREF (RFC 7606 §7.4, §7.5: bad length → treat-as-withdraw) -------


def encode_u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def decode_med(value: bytes) -> int:
    if len(value) != 4:
        raise _length_error("MULTI_EXIT_DISC", value, "4", Handling.TREAT_AS_WITHDRAW)
    return int.from_bytes(value, "big")


def decode_local_pref(value: bytes) -> int:
    if len(value) != 4:
        raise _length_error("LOCAL_PREF", value, "4", Handling.TREAT_AS_WITHDRAW)
    return int.from_bytes(value, "big")


# --- ATOMIC_AGGREGATE, AGGREGATOR, AS4_AGGREGATOR (§7.6, §7.7: attribute discard) --------------


def decode_atomic_aggregate(value: bytes) -> bool:
    if value:
        raise _length_error("ATOMIC_AGGREGATE", value, "0", Handling.ATTRIBUTE_DISCARD)
    return True


def encode_aggregator(aggregator: Aggregator, four_octet: bool) -> bytes:
    asn = aggregator.asn
    if four_octet:
        return asn.to_bytes(4, "big") + aggregator.address.packed
    return (asn if asn <= 0xFFFF else AS_TRANS).to_bytes(2, "big") + aggregator.address.packed


def _aggregator(value: bytes, size: int, name: str) -> Aggregator:
    if len(value) != size + 4:
        raise _length_error(name, value, str(size + 4), Handling.ATTRIBUTE_DISCARD)
    asn = int.from_bytes(value[:size], "big")
    if asn == 0:
        raise _error(
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, Handling.ATTRIBUTE_DISCARD, f"AS 0 in {name}"
        )
    return Aggregator(asn, IPv4Address(value[size:]))


def decode_aggregator(value: bytes, four_octet: bool) -> Aggregator:
    return _aggregator(value, 4 if four_octet else 2, "AGGREGATOR")


def encode_as4_aggregator(aggregator: Aggregator) -> bytes:
    return encode_aggregator(aggregator, four_octet=True)


def decode_as4_aggregator(value: bytes) -> Aggregator:
    return _aggregator(value, 4, "AS4_AGGREGATOR")


# --- ORIGINATOR_ID, CLUSTER_LIST (RFC 4456; RFC 7606 §7.9, §7.10: treat-as-withdraw) ----------


def decode_originator_id(value: bytes) -> IPv4Address:
    if len(value) != 4:
        raise _length_error("ORIGINATOR_ID", value, "4", Handling.TREAT_AS_WITHDRAW)
    return IPv4Address(value)


def encode_cluster_list(ids: Iterable[IPv4Address]) -> bytes:
    return b"".join(cluster.packed for cluster in ids)


def decode_cluster_list(value: bytes) -> tuple[IPv4Address, ...]:
    if not value or len(value) % 4:
        raise _length_error(
            "CLUSTER_LIST", value, "a non-zero multiple of 4", Handling.TREAT_AS_WITHDRAW
        )
    return tuple(IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4))


# --- RFC 6793 §4.2.3: rebuild the 4-octet path on a 2-octet session ---------------------------


def _leading(path: AsPath, wanted: int) -> list[AsPathSegment]:
    """The leading part of ``path`` holding ``wanted`` AS numbers (by path-length counting),
    with the confederation segments that lead it or sit next to a taken segment."""
    taken: list[AsPathSegment] = []
    for segment in path.segments:
        if segment.type in CONFED_SEGMENTS:
            taken.append(segment)
            continue
        if wanted <= 0:
            break
        if segment.type is SegmentType.AS_SET:
            taken.append(segment)
            wanted -= 1
            continue
        part = segment.asns[:wanted]
        taken.append(AsPathSegment(segment.type, part))
        wanted -= len(part)
        if len(part) < len(segment.asns):
            break
    return taken


def merge_as4_path(as_path: AsPath, as4_path: AsPath) -> AsPath:
    """Combine AS_PATH (with AS_TRANS) and AS4_PATH into the exact path (RFC 6793 §4.2.3).

    When AS_PATH has fewer AS numbers than AS4_PATH, AS4_PATH is ignored. Otherwise the
    leading AS numbers that AS_PATH has in excess are kept in front of AS4_PATH.
    """
    excess = as_path.length() - as4_path.length()
    if excess < 0:
        return as_path
    segments = _leading(as_path, excess)
    tail = list(as4_path.segments)
    if (
        segments
        and tail
        and segments[-1].type is SegmentType.AS_SEQUENCE
        and tail[0].type is SegmentType.AS_SEQUENCE
        and len(segments[-1].asns) + len(tail[0].asns) <= MAX_SEGMENT_ASNS
    ):
        joined = AsPathSegment(SegmentType.AS_SEQUENCE, segments[-1].asns + tail[0].asns)
        segments[-1:] = [joined]
        tail.pop(0)
    return AsPath((*segments, *tail))


def reconcile_as4(
    as_path: AsPath | None,
    aggregator: Aggregator | None,
    as4_path: AsPath | None,
    as4_aggregator: Aggregator | None,
) -> tuple[AsPath | None, Aggregator | None]:
    """RFC 6793 §4.2.3 for an UPDATE from a 2-octet speaker: returns (AS path, aggregator).

    If AGGREGATOR carries an AS other than AS_TRANS, AS4_AGGREGATOR *and* AS4_PATH are ignored;
    if it carries AS_TRANS, AS4_AGGREGATOR supplies the real one. AS4_AGGREGATOR without
    AGGREGATOR is ignored.
    """
    if as4_aggregator is not None and aggregator is not None:
        if aggregator.asn != AS_TRANS:
            return as_path, aggregator
        aggregator = as4_aggregator
    if as4_path is not None and as_path is not None:
        as_path = merge_as4_path(as_path, as4_path)
    return as_path, aggregator
