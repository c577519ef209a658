"""Adj-RIB-In (apply, withdraw, treat-as-withdraw, graceful-restart stale sweep) and Loc-RIB."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import attrs

from bgp.codec import (
    AsPath,
    MpReachNlri,
    MpUnreachNlri,
    Origin,
    PathAttributes,
    Update,
    decode,
    encode,
    end_of_rib,
)
from bgp.decision import DecisionOptions, Reason
from bgp.kernel_routes import NextHop, desired_routes
from bgp.rib import (
    AdjRibIn,
    BestChange,
    LocRib,
    PeerInfo,
    Route,
    RouteChange,
    key_prefix,
    prefix_key,
)
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Negotiated, Safi

NEG = Negotiated(
    four_octet_as=True, families=frozenset({IPV4_UNICAST, IPV6_UNICAST}), local_asn=65100
)
ROUTER = PeerInfo(IPv4Address("192.168.80.254"), IPv4Address("192.168.80.254"), 65101, True)
OTHER = PeerInfo(IPv4Address("192.168.80.253"), IPv4Address("192.168.80.253"), 65102, True)
NH = IPv4Address("192.168.80.254")
NH6 = IPv6Address("2001:db8:80::254")
OTHER_NH = IPv4Address("192.168.80.253")


def attributes(med: int = 0, asn: int = 65101, next_hop: IPv4Address | None = NH) -> PathAttributes:
    return PathAttributes(
        origin=Origin.IGP, as_path=AsPath.sequence([asn]), next_hop=next_hop, med=med
    )


def nets(*texts: str) -> list[IPv4Network]:
    return [IPv4Network(text) for text in texts]


def announce(*texts: str, med: int = 0) -> Update:
    return Update(attributes=attributes(med), nlri=nets(*texts))


def wire(update: Update) -> Update:
    """The update as a peer's UPDATE would decode (fresh attribute objects)."""
    decoded = decode(encode(update, NEG), NEG)
    assert isinstance(decoded, Update)
    return decoded


def test_prefix_keys_round_trip() -> None:
    for prefix in (IPv4Network("0.0.0.0/0"), IPv4Network("198.51.100.7/32")):
        assert key_prefix(prefix_key(prefix), IPV4_UNICAST) == prefix
    prefix6 = IPv6Network("2001:db8:100::/48")
    assert key_prefix(prefix_key(prefix6), IPV6_UNICAST) == prefix6


def test_announce_shares_one_path_between_all_prefixes() -> None:
    rib = AdjRibIn(ROUTER)
    changes = rib.apply(wire(announce("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/24")))
    assert [c.prefix for c in changes] == nets("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/24")
    assert all(c.old is None for c in changes)
    path = changes[0].new
    assert path is not None and all(c.new is path for c in changes)
    assert path.peer == ROUTER and path.next_hop == NH and not path.stale
    # a later UPDATE with equal attributes (decoded anew) shares the same Path too
    later = rib.apply(wire(announce("10.4.0.0/16")))
    assert later[0].new is path
    assert rib.get(IPv4Network("10.4.0.0/16")) is path
    assert rib.counts() == {IPV4_UNICAST: 4}


def test_identical_reannouncement_changes_nothing() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(wire(announce("10.1.0.0/16")))
    assert rib.apply(wire(announce("10.1.0.0/16"))) == []


def test_new_attributes_replace_the_old_path() -> None:
    rib = AdjRibIn(ROUTER)
    (first,) = rib.apply(announce("10.1.0.0/16", med=1))
    (second,) = rib.apply(announce("10.1.0.0/16", med=2))
    assert second.old is first.new
    assert second.new is not None and second.new.attributes.med == 2
    assert len(rib) == 1


def test_withdraw() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(announce("10.1.0.0/16", "10.2.0.0/16"))
    path = rib.get(IPv4Network("10.1.0.0/16"))
    changes = rib.apply(Update(withdrawn=nets("10.1.0.0/16", "10.9.0.0/16")))
    assert changes == [RouteChange(IPv4Network("10.1.0.0/16"), path, None)]
    assert IPv4Network("10.1.0.0/16") not in rib
    assert IPv4Network("10.2.0.0/16") in rib


def test_treat_as_withdraw_removes_the_announced_prefixes() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(announce("10.1.0.0/16", "10.2.0.0/16"))
    body = bytearray(encode(announce("10.1.0.0/16", med=7), NEG))
    origin_at = body.index(bytes([0x40, 1, 1, 0]))  # ORIGIN IGP
    body[origin_at + 3] = 9  # an invalid ORIGIN value: RFC 7606 treat-as-withdraw
    update = decode(bytes(body), NEG)
    assert isinstance(update, Update) and update.treat_as_withdraw
    changes = rib.apply(update)
    assert [(c.prefix, c.new) for c in changes] == [(IPv4Network("10.1.0.0/16"), None)]
    assert list(rib.counts().values()) == [1]


def test_ipv6_in_mp_reach_and_mp_unreach() -> None:
    rib = AdjRibIn(ROUTER)
    p6 = IPv6Network("2001:db8:100::/48")
    reach = MpReachNlri(Afi.IPV6, Safi.UNICAST, NH6, [p6], IPv6Address("fe80::1"))
    (change,) = rib.apply(wire(Update(attributes=attributes(next_hop=None), mp_reach=reach)))
    assert change.new is not None
    assert change.new.next_hop == NH6
    assert change.new.link_local_next_hop == IPv6Address("fe80::1")
    assert rib.counts() == {IPV6_UNICAST: 1}
    assert rib.count(IPV4_UNICAST) == 0
    assert [route.prefix for route in rib.routes(IPV6_UNICAST)] == [p6]
    gone = rib.apply(wire(Update(mp_unreach=MpUnreachNlri(Afi.IPV6, Safi.UNICAST, [p6]))))
    assert gone == [RouteChange(p6, change.new, None)]
    assert len(rib) == 0


def test_end_of_rib_changes_nothing() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(announce("10.1.0.0/16"))
    assert rib.apply(end_of_rib(IPV4_UNICAST)) == []
    assert rib.apply(end_of_rib(IPV6_UNICAST)) == []


def test_iteration_gives_routes() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(announce("10.1.0.0/16", "10.2.0.0/16"))
    routes = sorted(rib, key=lambda r: r.prefix)
    assert [r.prefix for r in routes] == nets("10.1.0.0/16", "10.2.0.0/16")
    assert isinstance(routes[0], Route) and routes[0].peer == ROUTER
    assert routes[0].attributes.med == 0 and not routes[0].stale


def test_graceful_restart_stale_then_sweep() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(announce("10.1.0.0/16", "10.2.0.0/16", "10.3.0.0/16"))
    fresh = rib.get(IPv4Network("10.1.0.0/16"))
    assert rib.mark_stale(IPV4_UNICAST) == 3
    assert rib.stale_count(IPV4_UNICAST) == 3
    stale = rib.get(IPv4Network("10.1.0.0/16"))
    assert stale is not None and stale.stale and stale.attributes == attributes()
    assert rib.get(IPv4Network("10.2.0.0/16")) is stale  # still shared
    # the restarted peer re-sends two routes: one unchanged, one with a new MED
    (refreshed,) = rib.apply(wire(announce("10.1.0.0/16")))
    assert refreshed.old is stale and refreshed.new is fresh
    (changed,) = rib.apply(announce("10.2.0.0/16", med=5))
    assert changed.new is not None and not changed.new.stale
    swept = list(rib.sweep_stale(IPV4_UNICAST))
    assert swept == [RouteChange(IPv4Network("10.3.0.0/16"), stale, None)]
    assert rib.stale_count(IPV4_UNICAST) == 0
    assert sorted(r.prefix for r in rib) == nets("10.1.0.0/16", "10.2.0.0/16")


def test_sweep_of_an_unknown_family_is_empty() -> None:
    assert list(AdjRibIn(ROUTER).sweep_stale(IPV6_UNICAST)) == []
    assert AdjRibIn(ROUTER).mark_stale(IPV6_UNICAST) == 0


def test_clear_withdraws_everything() -> None:
    rib = AdjRibIn(ROUTER)
    rib.apply(announce("10.1.0.0/16", "10.2.0.0/16"))
    p6 = IPv6Network("2001:db8:1::/48")
    rib.apply(
        Update(attributes=attributes(), mp_reach=MpReachNlri(Afi.IPV6, Safi.UNICAST, NH6, [p6]))
    )
    assert rib.counts() == {IPV4_UNICAST: 2, IPV6_UNICAST: 1}
    gone = list(rib.clear(IPV6_UNICAST))
    assert [c.prefix for c in gone] == [p6]
    assert rib.counts() == {IPV4_UNICAST: 2}
    gone = list(rib.clear())
    assert sorted(c.prefix for c in gone) == nets("10.1.0.0/16", "10.2.0.0/16")
    assert all(c.new is None and c.old is not None for c in gone)
    assert len(rib) == 0


# --- Loc-RIB -----------------------------------------------------------------------------------


def feed(loc: LocRib, rib: AdjRibIn, update: Update) -> list[BestChange]:
    return loc.apply(rib.apply(update), rib.peer)


def test_locrib_first_path_becomes_best() -> None:
    loc, rib = LocRib(), AdjRibIn(ROUTER)
    changes = feed(loc, rib, announce("10.1.0.0/16"))
    path = rib.get(IPv4Network("10.1.0.0/16"))
    assert path is not None
    assert changes == [BestChange(IPv4Network("10.1.0.0/16"), None, path, (path,))]
    assert loc.best(IPv4Network("10.1.0.0/16")) is path
    assert feed(loc, rib, wire(announce("10.1.0.0/16"))) == []  # nothing changed


def test_locrib_better_path_from_another_peer_takes_over_and_falls_back() -> None:
    loc, a, b = LocRib(), AdjRibIn(ROUTER), AdjRibIn(OTHER)
    prefix = IPv4Network("10.1.0.0/16")
    feed(loc, a, announce("10.1.0.0/16"))
    first = a.get(prefix)
    assert first is not None
    longer = PathAttributes(origin=Origin.IGP, as_path=AsPath.sequence([65102, 1]), next_hop=NH)
    assert feed(loc, b, Update(attributes=longer, nlri=[prefix])) == []  # worse: no change
    shorter = PathAttributes(origin=Origin.IGP, as_path=AsPath(), next_hop=NH)
    (took,) = feed(loc, b, Update(attributes=shorter, nlri=[prefix]))
    assert took.old_best is first and took.new_best is b.get(prefix)
    assert loc.candidates(prefix) == (first, b.get(prefix))
    assert [reason for _path, reason in loc.explain(prefix)] == [Reason.AS_PATH, None]
    (back,) = feed(loc, b, Update(withdrawn=[prefix]))
    assert back.new_best is first and back.multipath == (first,)
    (gone,) = feed(loc, a, Update(withdrawn=[prefix]))
    assert gone == BestChange(prefix, first, None, (), (first,))
    assert len(loc) == 0 and loc.best(prefix) is None


def test_locrib_reports_multipath_changes() -> None:
    loc, a = LocRib(), AdjRibIn(ROUTER)
    peer_b = attrs.evolve(OTHER, asn=65101, router_id=IPv4Address("192.168.80.255"))
    b = AdjRibIn(peer_b)
    prefix = IPv4Network("10.1.0.0/16")
    feed(loc, a, announce("10.1.0.0/16"))
    (grew,) = feed(loc, b, Update(attributes=attributes(next_hop=OTHER_NH), nlri=[prefix]))
    assert grew.old_best is grew.new_best
    assert {p.next_hop for p in grew.multipath} == {NH, OTHER_NH}
    assert len(grew.old_multipath) == 1
    (shrank,) = feed(loc, b, Update(withdrawn=[prefix]))
    assert shrank.multipath == (a.get(prefix),)
    assert dict(loc.selections())[prefix].multipath == (a.get(prefix),)


def test_locrib_keeps_arrival_order_across_a_stale_refresh() -> None:
    options = DecisionOptions(prefer_oldest=True)
    loc, a, b = LocRib(options), AdjRibIn(ROUTER), AdjRibIn(OTHER)
    prefix = IPv4Network("10.1.0.0/16")
    feed(loc, b, announce("10.1.0.0/16"))  # older, but the higher router id
    feed(loc, a, announce("10.1.0.0/16"))
    assert loc.best(prefix) is b.get(prefix)
    b.mark_stale(IPV4_UNICAST)
    stale = b.get(prefix)
    assert stale is not None
    loc.update(prefix, OTHER, stale)  # same route, only stale: keeps its age
    assert loc.best(prefix) is stale
    (moved,) = feed(loc, b, announce("10.1.0.0/16", med=3))  # new attributes: now the newest
    assert moved.new_best is a.get(prefix)


def test_locrib_counts_and_routes() -> None:
    loc, rib = LocRib(), AdjRibIn(ROUTER)
    feed(loc, rib, announce("10.1.0.0/16", "10.2.0.0/16"))
    p6 = IPv6Network("2001:db8:1::/48")
    reach = MpReachNlri(Afi.IPV6, Safi.UNICAST, NH6, [p6])
    feed(loc, rib, Update(attributes=attributes(next_hop=None), mp_reach=reach))
    assert loc.counts() == {IPV4_UNICAST: 2, IPV6_UNICAST: 1}
    assert loc.count(IPV6_UNICAST) == 1
    assert {r.prefix for r in loc.routes(IPV4_UNICAST)} == set(nets("10.1.0.0/16", "10.2.0.0/16"))
    assert len(list(loc.routes())) == 3


def test_withdraw_of_unknown_prefix_or_peer_is_no_change() -> None:
    loc, rib = LocRib(), AdjRibIn(ROUTER)
    prefix = IPv4Network("10.1.0.0/16")
    assert loc.update(prefix, ROUTER, None) is None
    feed(loc, rib, announce("10.1.0.0/16"))
    assert loc.update(prefix, OTHER, None) is None


def test_locrib_selections_give_the_kernel_next_hops() -> None:
    loc, a = LocRib(), AdjRibIn(ROUTER)
    b = AdjRibIn(attrs.evolve(OTHER, asn=65101, router_id=IPv4Address("192.168.80.255")))
    feed(loc, a, announce("10.1.0.0/16", "10.2.0.0/16"))
    feed(loc, b, Update(attributes=attributes(next_hop=OTHER_NH), nlri=nets("10.1.0.0/16")))
    desired = desired_routes(loc.selections())
    assert desired == {
        IPv4Network("10.1.0.0/16"): [NextHop(OTHER_NH), NextHop(NH)],
        IPv4Network("10.2.0.0/16"): [NextHop(NH)],
    }
