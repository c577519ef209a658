"""Sample messages shared by the round-trip tests and the fuzz corpus."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import attrs

from bgp.codec import (
    Aggregator,
    AsPath,
    AsPathSegment,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
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
    WellKnownCommunity,
    community,
    encode,
    end_of_rib,
)
from bgp.errors import CeaseSubcode, ErrorCode
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Negotiated, Safi

from .wire import EXTENDED, SESSIONS

VIP = IPv4Network("198.51.100.0/24")
VIP6 = IPv6Network("2001:db8:100::/48")
BASE = PathAttributes(
    origin=Origin.IGP,
    as_path=AsPath.sequence([65100]),
    next_hop=IPv4Address("192.168.80.252"),
)


def seg(kind: SegmentType, *asns: int) -> AsPathSegment:
    return AsPathSegment(kind, asns)


VARIANTS: dict[str, PathAttributes] = {
    "origin-egp": attrs.evolve(BASE, origin=Origin.EGP),
    "origin-incomplete": attrs.evolve(BASE, origin=Origin.INCOMPLETE),
    "as-path-empty": attrs.evolve(BASE, as_path=AsPath()),
    "as-path-set": attrs.evolve(
        BASE,
        as_path=AsPath([seg(SegmentType.AS_SEQUENCE, 65100, 65001), seg(SegmentType.AS_SET, 1, 2)]),
    ),
    "as-path-confed": attrs.evolve(
        BASE,
        as_path=AsPath(
            [
                seg(SegmentType.AS_CONFED_SEQUENCE, 64512, 64513),
                seg(SegmentType.AS_CONFED_SET, 64514),
                seg(SegmentType.AS_SEQUENCE, 65100),
            ]
        ),
    ),
    "as-path-4-octet": attrs.evolve(
        BASE, as_path=AsPath([seg(SegmentType.AS_SEQUENCE, 4_200_000_000, 65100, 70000)])
    ),
    "as-path-4-octet-set": attrs.evolve(
        BASE,
        as_path=AsPath(
            [seg(SegmentType.AS_SEQUENCE, 65100), seg(SegmentType.AS_SET, 4_200_000_000, 7)]
        ),
    ),
    "as-path-long": attrs.evolve(BASE, as_path=AsPath.sequence(range(1, 301))),
    "med": attrs.evolve(BASE, med=0),
    "med-max": attrs.evolve(BASE, med=0xFFFF_FFFF),
    "local-pref": attrs.evolve(BASE, local_pref=200),
    "atomic-aggregate": attrs.evolve(BASE, atomic_aggregate=True),
    "aggregator": attrs.evolve(BASE, aggregator=Aggregator(65100, IPv4Address("10.0.0.1"))),
    "aggregator-4-octet": attrs.evolve(
        BASE, aggregator=Aggregator(4_200_000_000, IPv4Address("10.0.0.1"))
    ),
    "communities": attrs.evolve(
        BASE,
        communities=[
            community(65100, 1),
            WellKnownCommunity.NO_EXPORT,
            WellKnownCommunity.BLACKHOLE,
        ],
    ),
    "communities-long": attrs.evolve(BASE, communities=range(100)),
    "extended-communities": attrs.evolve(BASE, extended_communities=[0x0002FE4C00000064]),
    "large-communities": attrs.evolve(
        BASE, large_communities=[LargeCommunity(4_200_000_000, 1, 2), LargeCommunity(65100, 0, 0)]
    ),
    "originator-cluster": attrs.evolve(
        BASE,
        originator_id=IPv4Address("192.168.80.253"),
        cluster_list=[IPv4Address("1.1.1.1"), IPv4Address("2.2.2.2")],
    ),
    "unknown-transitive": attrs.evolve(
        BASE, unknown=[UnknownAttribute(99, 0xE0, b"abc"), UnknownAttribute(40, 0xE0, b"x" * 300)]
    ),
    "everything": PathAttributes(
        origin=Origin.INCOMPLETE,
        as_path=AsPath(
            [seg(SegmentType.AS_SEQUENCE, 65100, 4_200_000_000), seg(SegmentType.AS_SET, 9)]
        ),
        next_hop=IPv4Address("192.168.80.252"),
        med=10,
        local_pref=90,
        atomic_aggregate=True,
        aggregator=Aggregator(4_200_000_000, IPv4Address("192.168.80.252")),
        communities=[WellKnownCommunity.GRACEFUL_SHUTDOWN],
        extended_communities=[1, 2],
        large_communities=[LargeCommunity(1, 2, 3)],
        originator_id=IPv4Address("192.168.80.253"),
        cluster_list=[IPv4Address("192.168.80.254")],
        unknown=[UnknownAttribute(250, 0xE0, b"")],
    ),
}

IBGP_ONLY = {"local-pref", "originator-cluster", "everything"}


def sample_messages(negotiated: Negotiated) -> list[Message]:
    """One message of every type, and an UPDATE per attribute variant, valid on ``negotiated``."""
    drop = {"local_pref": None, "originator_id": None, "cluster_list": ()}
    out: list[Message] = [
        Keepalive(),
        Open.for_speaker(
            4_200_000_000,
            90,
            IPv4Address("192.168.80.252"),
            [
                MultiprotocolCapability(Afi.IPV4, Safi.UNICAST),
                MultiprotocolCapability(Afi.IPV6, Safi.UNICAST),
                RouteRefreshCapability(),
                EnhancedRouteRefreshCapability(),
                ExtendedMessageCapability(),
                GracefulRestartCapability(
                    120, True, True, [GracefulRestartFamily(Afi.IPV4, Safi.UNICAST, True)]
                ),
                UnknownCapability(73, b"\x05node1"),
            ],
        ),
        Open(65100, 3, IPv4Address("1.2.3.4"), [], [OptionalParameter(1, b"ab")]),
        Open(65100, 0, IPv4Address("1.2.3.4"), [UnknownCapability(200, bytes(250))] * 2),
        Notification.cease(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, "maintenance"),
        Notification(ErrorCode.UPDATE_MESSAGE_ERROR, 3, b"\x03"),
        RouteRefresh(Afi.IPV6, Safi.UNICAST, 1),
        RouteRefresh(Afi.IPV4, Safi.UNICAST),
        end_of_rib(IPV4_UNICAST),
        end_of_rib(IPV6_UNICAST),
        Update(
            withdrawn=[IPv4Network("203.0.113.0/24")],
            mp_unreach=MpUnreachNlri(Afi.IPV6, Safi.UNICAST, [VIP6]),
        ),
        Update(
            attributes=attrs.evolve(BASE, next_hop=None),
            mp_reach=MpReachNlri(
                Afi.IPV6,
                Safi.UNICAST,
                IPv6Address("2001:db8::252"),
                [VIP6, IPv6Network("::/0")],
                IPv6Address("fe80::1"),
            ),
        ),
    ]
    for name, attributes in VARIANTS.items():
        if negotiated.ebgp and name in IBGP_ONLY:
            attributes = attrs.evolve(attributes, **drop)
        withdrawn = [IPv4Network("203.0.113.0/24")]
        out.append(Update(withdrawn=withdrawn, attributes=attributes, nlri=[VIP]))
    return out


def corpus() -> list[tuple[Negotiated, bytes]]:
    """Encoded sample messages for every test session."""
    return [
        (negotiated, encode(message, negotiated))
        for negotiated in [*SESSIONS, EXTENDED]
        for message in sample_messages(negotiated)
    ]
