"""Hypothesis strategies producing valid BGP messages for the property tests."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hypothesis import strategies as st

from bgp.codec import (
    Aggregator,
    AsPath,
    AsPathSegment,
    Capability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    FourOctetAsCapability,
    GracefulRestartCapability,
    GracefulRestartFamily,
    Keepalive,
    LargeCommunity,
    Message,
    MpReachNlri,
    MpUnreachNlri,
    MultiprotocolCapability,
    Notification,
    Open,
    OptionalParameter,
    Origin,
    PathAttributes,
    RouteRefresh,
    RouteRefreshCapability,
    SegmentType,
    UnknownAttribute,
    UnknownCapability,
    Update,
)
from bgp.codec.attributes import AttrType
from bgp.types import Afi, Negotiated, Safi

from .wire import EXTENDED, SESSIONS

negotiated_sessions = st.sampled_from([*SESSIONS, EXTENDED])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
asn4 = st.integers(1, 0xFFFF_FFFF)
asn2 = st.integers(1, 0xFFFF)


def _ipv4_net(value: int, length: int) -> IPv4Network:
    mask = ((1 << length) - 1) << (32 - length) if length else 0
    return IPv4Network((value & mask, length))


def _ipv6_net(value: int, length: int) -> IPv6Network:
    mask = ((1 << length) - 1) << (128 - length) if length else 0
    return IPv6Network((value & mask, length))


# One draw per value keeps generation fast: the prefix length rides in the high bits.
ipv4_prefixes = st.integers(0, (33 << 32) - 1).map(lambda v: _ipv4_net(v & 0xFFFF_FFFF, v >> 32))
ipv6_prefixes = st.integers(0, (129 << 128) - 1).map(
    lambda v: _ipv6_net(v & ((1 << 128) - 1), v >> 128)
)
unicast_v4 = st.integers(1 << 24, (224 << 24) - 1).map(IPv4Address)
unicast_v6 = st.integers(0x2000 << 112, (0x3FFF << 112) - 1).map(IPv6Address)
link_local_v6 = st.integers(0, (1 << 64) - 1).map(lambda low: IPv6Address((0xFE80 << 112) | low))


large_communities = st.integers(0, (1 << 96) - 1).map(
    lambda v: LargeCommunity(v >> 64, (v >> 32) & 0xFFFF_FFFF, v & 0xFFFF_FFFF)
)
aggregators = st.integers(1 << 32, (1 << 64) - 1).map(
    lambda v: Aggregator(v >> 32, IPv4Address(v & 0xFFFF_FFFF))
)


def _segments(kinds: list[SegmentType], asns: st.SearchStrategy[int], size: int, count: int):  # type: ignore[no-untyped-def]
    return st.lists(
        st.builds(AsPathSegment, st.sampled_from(kinds), st.lists(asns, min_size=1, max_size=size)),
        max_size=count,
    )


_CONFED = [SegmentType.AS_CONFED_SEQUENCE, SegmentType.AS_CONFED_SET]
_PLAIN = [SegmentType.AS_SEQUENCE, SegmentType.AS_SET]
# Confederation segments lead (as RFC 5065 has them); on a 2-octet session they hold 2-octet
# AS numbers, since AS4_PATH cannot carry them.
AS_PATHS = {
    four: st.builds(
        lambda confed, rest: AsPath([*confed, *rest]),
        _segments(_CONFED, asn4 if four else asn2, 3, 2),
        _segments(_PLAIN, asn4, 6, 4),
    )
    for four in (False, True)
}

_KNOWN = {int(code) for code in AttrType}
unknown_attributes = st.lists(
    st.builds(
        UnknownAttribute,
        st.sampled_from([c for c in range(11, 256) if c not in _KNOWN]),
        st.just(0xE0),
        st.binary(max_size=20),
    ),
    max_size=3,
    unique_by=lambda attribute: attribute.type_code,
)


def _path_attributes(four: bool, ibgp: bool, reachable: bool) -> st.SearchStrategy[PathAttributes]:
    def sometimes(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
        return strategy if reachable else st.none() | strategy

    return st.builds(
        PathAttributes,
        origin=sometimes(st.sampled_from(Origin)),
        as_path=sometimes(AS_PATHS[four]),
        next_hop=sometimes(unicast_v4),
        med=st.none() | u32,
        local_pref=st.none() | u32 if ibgp else st.none(),
        atomic_aggregate=st.booleans(),
        aggregator=st.none() | aggregators,
        communities=st.lists(u32, max_size=5),
        extended_communities=st.lists(st.integers(0, (1 << 64) - 1), max_size=3),
        large_communities=st.lists(large_communities, max_size=3, unique=True),
        originator_id=st.none() | unicast_v4 if ibgp else st.none(),
        cluster_list=st.lists(unicast_v4, max_size=3) if ibgp else st.just(()),
        unknown=unknown_attributes,
    )


PATH_ATTRIBUTES = {
    (four, ibgp, reachable): _path_attributes(four, ibgp, reachable)
    for four in (False, True)
    for ibgp in (False, True)
    for reachable in (False, True)
}

_MP_REACH = (
    st.none()
    | st.builds(
        MpReachNlri,
        st.just(Afi.IPV6),
        st.just(Safi.UNICAST),
        unicast_v6,
        st.lists(ipv6_prefixes, max_size=4),
        st.none() | link_local_v6,
    )
    | st.builds(
        MpReachNlri,
        st.just(Afi.IPV4),
        st.just(Safi.UNICAST),
        unicast_v4,
        st.lists(ipv4_prefixes, max_size=4),
    )
)
_MP_UNREACH = st.none() | st.builds(
    MpUnreachNlri, st.just(Afi.IPV6), st.just(Safi.UNICAST), st.lists(ipv6_prefixes, max_size=4)
)
_IPV4_LIST = st.lists(ipv4_prefixes, max_size=4)


@st.composite
def updates(draw: st.DrawFn, negotiated: Negotiated) -> Update:
    nlri = draw(_IPV4_LIST)
    mp_reach = draw(_MP_REACH)
    reachable = bool(nlri) or (mp_reach is not None and bool(mp_reach.nlri))
    key = (negotiated.four_octet_as, not negotiated.ebgp, reachable)
    return Update(
        withdrawn=draw(_IPV4_LIST),
        attributes=draw(PATH_ATTRIBUTES[key]),
        nlri=nlri,
        mp_reach=mp_reach,
        mp_unreach=draw(_MP_UNREACH),
    )


capabilities: st.SearchStrategy[Capability] = st.one_of(
    st.builds(MultiprotocolCapability, u16, u8),
    st.just(RouteRefreshCapability()),
    st.just(EnhancedRouteRefreshCapability()),
    st.just(ExtendedMessageCapability()),
    st.builds(FourOctetAsCapability, u32),
    st.builds(
        GracefulRestartCapability,
        st.integers(0, 0xFFF),
        st.booleans(),
        st.booleans(),
        st.lists(st.builds(GracefulRestartFamily, u16, u8, st.booleans()), max_size=3),
    ),
    st.builds(
        UnknownCapability,
        st.sampled_from([3, 5, 7, 8, 9, 66, 67, 69, 71, 73, 128, 255]),
        st.binary(max_size=60),
    ),
)

opens = st.builds(
    Open,
    u16,
    u16,
    u32.map(IPv4Address),
    st.lists(capabilities, max_size=5),
    st.lists(
        st.builds(
            OptionalParameter, st.integers(0, 254).filter(lambda t: t != 2), st.binary(max_size=10)
        ),
        max_size=2,
    ),
)

notifications = st.builds(Notification, u8, u8, st.binary(max_size=80))
route_refreshes = st.builds(RouteRefresh, u16, u8, u8)


MESSAGES: dict[Negotiated, st.SearchStrategy[Message]] = {
    negotiated: st.one_of(
        st.just(Keepalive()), opens, notifications, route_refreshes, updates(negotiated)
    )
    for negotiated in [*SESSIONS, EXTENDED]
}

sessions_and_messages: st.SearchStrategy[tuple[Negotiated, Message]] = st.one_of(
    [st.tuples(st.just(negotiated), strategy) for negotiated, strategy in MESSAGES.items()]
)
