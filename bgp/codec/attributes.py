"""The path-attribute block of an UPDATE (RFC 4271 §4.3) with RFC 7606 error handling.

Each attribute:

     0                   1
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+---------------------------+
    |O|T|P|E|  0    |  Type Code    | Length (1 octet, 2 if E)  | Value ...
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+---------------------------+
     O optional, T transitive, P partial, E extended length

`decode_attributes` walks the block with an explicit dispatch table (`_SPECS`, type code →
expected flags, decoder, RFC 7606 outcome). Session-reset errors are raised; treat-as-withdraw and
attribute-discard errors are collected and returned with whatever decoded cleanly. Unknown
optional transitive attributes are kept (Partial bit set, for passing on), unknown optional
non-transitive ones are dropped, an unknown well-known one is a session reset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum
from ipaddress import IPv4Address

import attrs

from bgp.codec import attr_basic as basic
from bgp.codec import attr_community as comm
from bgp.codec import attr_mp as mp
from bgp.errors import BgpError, ErrorCode, Handling, UpdateSubcode
from bgp.types import Negotiated

OPTIONAL = 0x80
TRANSITIVE = 0x40
PARTIAL = 0x20
EXTENDED_LENGTH = 0x10

WELL_KNOWN = TRANSITIVE
OPTIONAL_TRANSITIVE = OPTIONAL | TRANSITIVE
OPTIONAL_NON_TRANSITIVE = OPTIONAL


class AttrType(IntEnum):
    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITY = 32


def _octet(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{attribute.name}={value} does not fit in 1 octet")


@attrs.frozen
class UnknownAttribute:
    """An attribute this codec does not interpret, re-encoded with ``flags`` as given.

    Decoded ones are optional transitive and carry the Partial bit (RFC 4271 §5).
    """

    type_code: int = attrs.field(validator=_octet)
    flags: int = attrs.field(validator=_octet)
    value: bytes = b""

    @property
    def optional(self) -> bool:
        return bool(self.flags & OPTIONAL)

    @property
    def transitive(self) -> bool:
        return bool(self.flags & TRANSITIVE)

    @property
    def partial(self) -> bool:
        return bool(self.flags & PARTIAL)


def _ints(values: Iterable[int]) -> tuple[int, ...]:
    return tuple(values)


def _large(values: Iterable[comm.LargeCommunity]) -> tuple[comm.LargeCommunity, ...]:
    return tuple(values)


def _addresses(values: Iterable[IPv4Address]) -> tuple[IPv4Address, ...]:
    return tuple(values)


def _unknown(values: Iterable[UnknownAttribute]) -> tuple[UnknownAttribute, ...]:
    return tuple(sorted(values, key=lambda attribute: attribute.type_code))


def _optional_u32(
    _instance: object, attribute: attrs.Attribute[int | None], value: int | None
) -> None:
    if value is not None and not 0 <= value <= 0xFFFF_FFFF:
        raise ValueError(f"{attribute.name}={value} does not fit in 4 octets")


@attrs.frozen
class PathAttributes:
    """The attributes describing the announced routes (MP_REACH/MP_UNREACH live on `Update`).

    Absent attributes are None (or empty / False). AS numbers are always the 4-octet ones.
    """

    origin: basic.Origin | None = None
    as_path: basic.AsPath | None = None
    next_hop: IPv4Address | None = None
    med: int | None = attrs.field(default=None, validator=_optional_u32)
    local_pref: int | None = attrs.field(default=None, validator=_optional_u32)
    atomic_aggregate: bool = False
    aggregator: basic.Aggregator | None = None
    communities: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    extended_communities: tuple[int, ...] = attrs.field(default=(), converter=_ints)
    large_communities: tuple[comm.LargeCommunity, ...] = attrs.field(default=(), converter=_large)
    originator_id: IPv4Address | None = None
    cluster_list: tuple[IPv4Address, ...] = attrs.field(default=(), converter=_addresses)
    unknown: tuple[UnknownAttribute, ...] = attrs.field(default=(), converter=_unknown)


@attrs.frozen
class AttributeBlock:
    """What `decode_attributes` found: ``codes`` are the type codes seen (even if malformed);
    ``complete`` is False when the block could not be walked to its end (RFC 7606 §4)."""

    attributes: PathAttributes
    mp_reach: mp.MpReachNlri | None
    mp_unreach: mp.MpUnreachNlri | None
    errors: tuple[BgpError, ...]
    codes: frozenset[int]
    complete: bool


# --- encoding ---------------------------------------------------------------------------------


def encode_attribute(flags: int, type_code: int, value: bytes) -> bytes:
    """One attribute; the Extended Length bit is set exactly when the value exceeds 255 octets."""
    flags &= OPTIONAL | TRANSITIVE | PARTIAL
    if len(value) > 0xFFFF:
        raise ValueError(f"attribute {type_code} value of {len(value)} octets exceeds 65535")
    if len(value) > 0xFF:
        return bytes([flags | EXTENDED_LENGTH, type_code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, type_code, len(value)]) + value


def encode_attributes(
    attributes: PathAttributes,
    negotiated: Negotiated,
    mp_reach: mp.MpReachNlri | None = None,
    mp_unreach: mp.MpUnreachNlri | None = None,
) -> bytes:
    """The attribute block: MP_UNREACH/MP_REACH first (RFC 7606 §5.1), the rest by type code.

    On a 2-octet session AS4_PATH/AS4_AGGREGATOR are added when needed (RFC 6793 §4.2.2); on an
    eBGP session LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST are left out (RFC 4271 §5.1.5,
    RFC 4456).
    """
    four = negotiated.four_octet_as
    ibgp = not negotiated.ebgp
    a = attributes
    items: list[tuple[int, int, bytes]] = []
    if a.origin is not None:
        items.append((AttrType.ORIGIN, WELL_KNOWN, basic.encode_origin(a.origin)))
    if a.as_path is not None:
        items.append((AttrType.AS_PATH, WELL_KNOWN, basic.encode_as_path(a.as_path, four)))
        if not four and basic.needs_as4_path(a.as_path):
            items.append((AttrType.AS4_PATH, OPTIONAL_TRANSITIVE, basic.encode_as4_path(a.as_path)))
    if a.next_hop is not None:
        items.append((AttrType.NEXT_HOP, WELL_KNOWN, basic.encode_next_hop(a.next_hop)))
    if a.med is not None:
        items.append((AttrType.MULTI_EXIT_DISC, OPTIONAL_NON_TRANSITIVE, basic.encode_u32(a.med)))
    if a.local_pref is not None and ibgp:
        items.append((AttrType.LOCAL_PREF, WELL_KNOWN, basic.encode_u32(a.local_pref)))
    if a.atomic_aggregate:
        items.append((AttrType.ATOMIC_AGGREGATE, WELL_KNOWN, b""))
    if a.aggregator is not None:
        items.append(
            (AttrType.AGGREGATOR, OPTIONAL_TRANSITIVE, basic.encode_aggregator(a.aggregator, four))
        )
        if not four and a.aggregator.asn > 0xFFFF:
            items.append(
                (
                    AttrType.AS4_AGGREGATOR,
                    OPTIONAL_TRANSITIVE,
                    basic.encode_as4_aggregator(a.aggregator),
                )
            )
    if a.communities:
        items.append(
            (AttrType.COMMUNITIES, OPTIONAL_TRANSITIVE, comm.encode_communities(a.communities))
        )
    if a.originator_id is not None and ibgp:
        items.append((AttrType.ORIGINATOR_ID, OPTIONAL_NON_TRANSITIVE, a.originator_id.packed))
    if a.cluster_list and ibgp:
        items.append(
            (
                AttrType.CLUSTER_LIST,
                OPTIONAL_NON_TRANSITIVE,
                basic.encode_cluster_list(a.cluster_list),
            )
        )
    if a.extended_communities:
        value = comm.encode_extended_communities(a.extended_communities)
        items.append((AttrType.EXTENDED_COMMUNITIES, OPTIONAL_TRANSITIVE, value))
    if a.large_communities:
        value = comm.encode_large_communities(a.large_communities)
        items.append((AttrType.LARGE_COMMUNITY, OPTIONAL_TRANSITIVE, value))
    items.extend((u.type_code, u.flags, u.value) for u in a.unknown)
    items.sort(key=lambda item: item[0])
    out: list[bytes] = []
    if mp_unreach is not None:
        out.append(
            encode_attribute(
                OPTIONAL_NON_TRANSITIVE, AttrType.MP_UNREACH_NLRI, mp.encode_mp_unreach(mp_unreach)
            )
        )
    if mp_reach is not None:
        out.append(
            encode_attribute(
                OPTIONAL_NON_TRANSITIVE, AttrType.MP_REACH_NLRI, mp.encode_mp_reach(mp_reach)
            )
        )
    out.extend(encode_attribute(flags, code, value) for code, flags, value in items)
    return b"".join(out)


# --- decoding ---------------------------------------------------------------------------------


@attrs.frozen
class _Context:
    negotiated: Negotiated
    has_classic_nlri: bool


@attrs.define
class _Builder:
    origin: basic.Origin | None = None
    as_path: basic.AsPath | None = None
    next_hop: IPv4Address | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: basic.Aggregator | None = None
    communities: tuple[int, ...] = ()
    extended_communities: tuple[int, ...] = ()
    large_communities: tuple[comm.LargeCommunity, ...] = ()
    originator_id: IPv4Address | None = None
    cluster_list: tuple[IPv4Address, ...] = ()
    unknown: list[UnknownAttribute] = attrs.Factory(list)
    mp_reach: mp.MpReachNlri | None = None
    mp_unreach: mp.MpUnreachNlri | None = None
    as4_path: basic.AsPath | None = None
    as4_aggregator: basic.Aggregator | None = None

    def take_origin(self, value: bytes, ctx: _Context) -> None:
        self.origin = basic.decode_origin(value)

    def take_as_path(self, value: bytes, ctx: _Context) -> None:
        self.as_path = basic.decode_as_path(value, ctx.negotiated.four_octet_as)

    def take_next_hop(self, value: bytes, ctx: _Context) -> None:
        self.next_hop = basic.decode_next_hop(value)

    def take_med(self, value: bytes, ctx: _Context) -> None:
        self.med = basic.decode_med(value)

    def take_local_pref(self, value: bytes, ctx: _Context) -> None:
        self.local_pref = basic.decode_local_pref(value)

    def take_atomic_aggregate(self, value: bytes, ctx: _Context) -> None:
        self.atomic_aggregate = basic.decode_atomic_aggregate(value)

    def take_aggregator(self, value: bytes, ctx: _Context) -> None:
        self.aggregator = basic.decode_aggregator(value, ctx.negotiated.four_octet_as)

    def take_communities(self, value: bytes, ctx: _Context) -> None:
        self.communities = comm.decode_communities(value)

    def take_originator_id(self, value: bytes, ctx: _Context) -> None:
        self.originator_id = basic.decode_originator_id(value)

    def take_cluster_list(self, value: bytes, ctx: _Context) -> None:
        self.cluster_list = basic.decode_cluster_list(value)

    def take_mp_reach(self, value: bytes, ctx: _Context) -> None:
        # Kept even when its next hop is unusable: treat-as-withdraw needs its NLRI.
        self.mp_reach = mp.decode_mp_reach(value)
        problem = mp.mp_next_hop_problem(self.mp_reach)
        if problem is not None:
            raise problem

    def take_mp_unreach(self, value: bytes, ctx: _Context) -> None:
        self.mp_unreach = mp.decode_mp_unreach(value)

    def take_extended_communities(self, value: bytes, ctx: _Context) -> None:
        self.extended_communities = comm.decode_extended_communities(value)

    def take_as4_path(self, value: bytes, ctx: _Context) -> None:
        self.as4_path = basic.decode_as4_path(value)

    def take_as4_aggregator(self, value: bytes, ctx: _Context) -> None:
        self.as4_aggregator = basic.decode_as4_aggregator(value)

    def take_large_communities(self, value: bytes, ctx: _Context) -> None:
        self.large_communities = comm.decode_large_communities(value)


@attrs.frozen
class _Spec:
    name: str
    flags: int  # the Optional and Transitive bits the attribute must carry
    decode: Callable[[_Builder, bytes, _Context], None]
    flags_error: Handling = Handling.TREAT_AS_WITHDRAW  # RFC 7606 §3 c
    ibgp_only: bool = False  # from an external peer: attribute discard (§7.5, §7.9, §7.10)
    as4: bool = False  # between 4-octet speakers: silently discarded (RFC 6793 §3)


_DISCARD = Handling.ATTRIBUTE_DISCARD
_RESET = Handling.SESSION_RESET

_SPECS: dict[int, _Spec] = {
    AttrType.ORIGIN: _Spec("ORIGIN", WELL_KNOWN, _Builder.take_origin),
    AttrType.AS_PATH: _Spec("AS_PATH", WELL_KNOWN, _Builder.take_as_path),
    AttrType.NEXT_HOP: _Spec("NEXT_HOP", WELL_KNOWN, _Builder.take_next_hop),
    AttrType.MULTI_EXIT_DISC: _Spec("MULTI_EXIT_DISC", OPTIONAL_NON_TRANSITIVE, _Builder.take_med),
    AttrType.LOCAL_PREF: _Spec("LOCAL_PREF", WELL_KNOWN, _Builder.take_local_pref, ibgp_only=True),
    AttrType.ATOMIC_AGGREGATE: _Spec(
        "ATOMIC_AGGREGATE", WELL_KNOWN, _Builder.take_atomic_aggregate
    ),
    AttrType.AGGREGATOR: _Spec("AGGREGATOR", OPTIONAL_TRANSITIVE, _Builder.take_aggregator),
    AttrType.COMMUNITIES: _Spec("COMMUNITIES", OPTIONAL_TRANSITIVE, _Builder.take_communities),
    AttrType.ORIGINATOR_ID: _Spec(
        "ORIGINATOR_ID", OPTIONAL_NON_TRANSITIVE, _Builder.take_originator_id, ibgp_only=True
    ),
    AttrType.CLUSTER_LIST: _Spec(
        "CLUSTER_LIST", OPTIONAL_NON_TRANSITIVE, _Builder.take_cluster_list, ibgp_only=True
    ),
    AttrType.MP_REACH_NLRI: _Spec(
        "MP_REACH_NLRI",
        OPTIONAL_NON_TRANSITIVE,
        _Builder.take_mp_reach,
        flags_error=_RESET,  # §5.3
    ),
    AttrType.MP_UNREACH_NLRI: _Spec(
        "MP_UNREACH_NLRI", OPTIONAL_NON_TRANSITIVE, _Builder.take_mp_unreach, flags_error=_RESET
    ),
    AttrType.EXTENDED_COMMUNITIES: _Spec(
        "EXTENDED_COMMUNITIES", OPTIONAL_TRANSITIVE, _Builder.take_extended_communities
    ),
    AttrType.AS4_PATH: _Spec(
        "AS4_PATH", OPTIONAL_TRANSITIVE, _Builder.take_as4_path, flags_error=_DISCARD, as4=True
    ),
    AttrType.AS4_AGGREGATOR: _Spec(
        "AS4_AGGREGATOR",
        OPTIONAL_TRANSITIVE,
        _Builder.take_as4_aggregator,
        flags_error=_DISCARD,
        as4=True,
    ),
    AttrType.LARGE_COMMUNITY: _Spec(
        "LARGE_COMMUNITY", OPTIONAL_TRANSITIVE, _Builder.take_large_communities
    ),
}

_MP_CODES = frozenset({AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI})


def _update_error(subcode: UpdateSubcode, data: bytes, handling: Handling, reason: str) -> BgpError:
    return BgpError(ErrorCode.UPDATE_MESSAGE_ERROR, subcode, data, handling=handling, reason=reason)


def _decode_one(
    flags: int, code: int, value: bytes, raw: bytes, ctx: _Context, b: _Builder, seen: set[int]
) -> BgpError | None:
    """Decode one attribute into ``b``; return a non-fatal error, raise a session reset."""
    if code in seen:
        if code in _MP_CODES:  # RFC 7606 §3 g
            raise _update_error(
                UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, b"", _RESET, f"attribute {code} repeated"
            )
        return _update_error(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, raw, _DISCARD, f"attribute {code} repeated"
        )
    seen.add(code)
    spec = _SPECS.get(code)
    if spec is None:
        if not flags & OPTIONAL:
            raise _update_error(
                UpdateSubcode.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                raw,
                _RESET,
                f"unrecognized well-known attribute {code}",
            )
        if flags & TRANSITIVE:
            b.unknown.append(UnknownAttribute(code, (flags | PARTIAL) & 0xE0, value))
        return None
    if spec.as4 and ctx.negotiated.four_octet_as:
        return None
    if spec.ibgp_only and ctx.negotiated.ebgp:
        return _update_error(
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR, raw, _DISCARD, f"{spec.name} from an eBGP peer"
        )
    error: BgpError
    if flags & (OPTIONAL | TRANSITIVE) != spec.flags:
        error = _update_error(
            UpdateSubcode.ATTRIBUTE_FLAGS_ERROR,
            raw,
            spec.flags_error,
            f"{spec.name} flags 0x{flags:02x}",
        )
    else:
        try:
            spec.decode(b, value, ctx)
            return None
        except BgpError as exc:
            error = exc.with_data(raw)
    if code == AttrType.NEXT_HOP and not ctx.has_classic_nlri:
        # NEXT_HOP only matters for NLRI in the UPDATE's own field (RFC 4760 §3).
        error = error.with_handling(_DISCARD)
    if error.handling is _RESET:
        raise error
    return error


def decode_attributes(
    data: bytes, negotiated: Negotiated, has_classic_nlri: bool
) -> AttributeBlock:
    """Walk a path-attribute block (see the module docstring for the outcomes)."""
    ctx = _Context(negotiated, has_classic_nlri)
    b = _Builder()
    errors: list[BgpError] = []
    seen: set[int] = set()
    complete = True
    pos = 0
    while pos < len(data):
        flags = data[pos]
        header = 4 if flags & EXTENDED_LENGTH else 3
        if pos + header > len(data):
            complete = False
            errors.append(
                _update_error(
                    UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
                    data[pos:],
                    Handling.TREAT_AS_WITHDRAW,
                    "truncated attribute header",  # RFC 7606 §4
                )
            )
            break
        code = data[pos + 1]
        end = pos + header + int.from_bytes(data[pos + 2 : pos + header], "big")
        if end > len(data):
            complete = False
            errors.append(
                _update_error(
                    UpdateSubcode.ATTRIBUTE_LENGTH_ERROR,
                    data[pos:],
                    Handling.TREAT_AS_WITHDRAW,
                    f"attribute {code} overruns the attribute block",  # RFC 7606 §4
                )
            )
            break
        error = _decode_one(flags, code, data[pos + header : end], data[pos:end], ctx, b, seen)
        if error is not None:
            errors.append(error)
        pos = end
    as_path, aggregator = b.as_path, b.aggregator
    if not negotiated.four_octet_as:
        as_path, aggregator = basic.reconcile_as4(as_path, aggregator, b.as4_path, b.as4_aggregator)
    attributes = PathAttributes(
        origin=b.origin,
        as_path=as_path,
        next_hop=b.next_hop,
        med=b.med,
        local_pref=b.local_pref,
        atomic_aggregate=b.atomic_aggregate,
        aggregator=aggregator,
        communities=b.communities,
        extended_communities=b.extended_communities,
        large_communities=b.large_communities,
        originator_id=b.originator_id,
        cluster_list=b.cluster_list,
        unknown=b.unknown,
    )
    return AttributeBlock(
        attributes, b.mp_reach, b.mp_unreach, tuple(errors), frozenset(seen), complete
    )
