"""Adj-RIB-Out: attributes by role and session type, grouping, diffs, size splitting, IPv6."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import attrs

from appliance.config.values import Community, LargeCommunity
from appliance.intent import RouteAdvert
from bgp.codec import AsPath, Origin, Update, decode, encode, is_end_of_rib
from bgp.codec import LargeCommunity as WireLargeCommunity
from bgp.export import AdjRibOut, ExportSettings, export_routes
from bgp.rib import AdjRibIn, PeerInfo
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Negotiated

LOCAL_AS = 65100
ROUTER_AS = 65101
SELF = IPv4Address("192.168.80.252")
SELF6 = IPv6Address("2001:db8:80::252")
BOTH = frozenset({IPV4_UNICAST, IPV6_UNICAST})
EBGP = Negotiated(
    four_octet_as=True, families=BOTH, local_asn=LOCAL_AS, peer_asn=ROUTER_AS, ebgp=True
)
IBGP = attrs.evolve(EBGP, peer_asn=LOCAL_AS, ebgp=False)
EBGP_SETTINGS = ExportSettings(EBGP, SELF, SELF6)
IBGP_SETTINGS = ExportSettings(IBGP, SELF, SELF6, local_pref=150)

VIP1 = IPv4Network("198.51.100.10/32")
VIP2 = IPv4Network("198.51.100.11/32")
VIP3 = IPv4Network("198.51.100.12/32")
VIP6 = IPv6Network("2001:db8:100::10/128")


def active(prefix: IPv4Network | IPv6Network) -> RouteAdvert:
    return RouteAdvert(prefix, med=0, prepend=0)


def backup(prefix: IPv4Network | IPv6Network) -> RouteAdvert:
    return RouteAdvert(prefix, med=100, prepend=3)


def encoded_sizes(updates: list[Update], negotiated: Negotiated) -> list[int]:
    """Encode each UPDATE (the codec refuses oversize messages) and check it decodes back."""
    sizes = []
    for update in updates:
        data = encode(update, negotiated)
        assert decode(data, negotiated) == update
        sizes.append(len(data))
    return sizes


def test_active_and_backup_attributes_towards_ebgp() -> None:
    routes = export_routes([active(VIP1), backup(VIP2)], EBGP_SETTINGS)
    one, two = routes[VIP1], routes[VIP2]
    assert one.origin is Origin.IGP and two.origin is Origin.IGP
    assert one.as_path == AsPath.sequence([LOCAL_AS])
    assert two.as_path == AsPath.sequence([LOCAL_AS] * 4)
    assert (one.med, two.med) == (0, 100)
    assert one.next_hop == SELF
    assert one.local_pref is None


def test_ibgp_gets_an_empty_as_path_and_local_pref() -> None:
    routes = export_routes([backup(VIP1)], IBGP_SETTINGS)
    assert routes[VIP1].as_path == AsPath()
    assert routes[VIP1].local_pref == 150
    assert routes[VIP1].med == 100


def test_communities_are_converted() -> None:
    advert = RouteAdvert(
        VIP1,
        med=0,
        prepend=0,
        communities=(Community(65100, 1), Community(65100, 2)),
        large_communities=(LargeCommunity(65100, 1, 2),),
    )
    attributes = export_routes([advert], EBGP_SETTINGS)[VIP1]
    assert attributes.communities == ((65100 << 16) | 1, (65100 << 16) | 2)
    assert attributes.large_communities == (WireLargeCommunity(65100, 1, 2),)


def test_static_prefixes_and_families_the_session_carries() -> None:
    static = [IPv4Network("198.51.100.0/24"), VIP1]
    routes = export_routes([active(VIP1), active(VIP6)], EBGP_SETTINGS, static)
    assert set(routes) == {IPv4Network("198.51.100.0/24"), VIP1, VIP6}
    assert routes[VIP1].med == 0  # the advert wins over the static prefix
    assert routes[IPv4Network("198.51.100.0/24")].med is None
    v4_only = ExportSettings(attrs.evolve(EBGP, families=frozenset({IPV4_UNICAST})), SELF, SELF6)
    assert set(export_routes([active(VIP1), active(VIP6)], v4_only)) == {VIP1}
    no_address6 = ExportSettings(EBGP, SELF)
    assert set(export_routes([active(VIP1), active(VIP6)], no_address6)) == {VIP1}


def test_identical_attributes_are_grouped_into_one_update() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    updates = out.diff(export_routes([active(VIP1), active(VIP2), backup(VIP3)], EBGP_SETTINGS))
    assert [(u.nlri, u.attributes.med) for u in updates] == [((VIP1, VIP2), 0), ((VIP3,), 100)]
    encoded_sizes(updates, EBGP)


def test_unchanged_set_sends_nothing() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    adverts = [active(VIP1), active(VIP2)]
    out.diff(export_routes(adverts, EBGP_SETTINGS))
    assert out.diff(export_routes(adverts, EBGP_SETTINGS)) == []


def test_changed_med_for_one_vip_sends_one_update_for_it() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    out.diff(export_routes([active(VIP1), active(VIP2), active(VIP3)], EBGP_SETTINGS))
    updates = out.diff(export_routes([active(VIP1), backup(VIP2), active(VIP3)], EBGP_SETTINGS))
    assert len(updates) == 1
    (update,) = updates
    assert update.nlri == (VIP2,) and update.withdrawn == ()
    assert update.attributes.med == 100
    assert update.attributes.as_path == AsPath.sequence([LOCAL_AS] * 4)


def test_withdrawal_of_a_vip() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    out.diff(export_routes([active(VIP1), active(VIP2), active(VIP6)], EBGP_SETTINGS))
    updates = out.diff(export_routes([active(VIP1)], EBGP_SETTINGS))
    assert len(updates) == 2
    assert updates[0] == Update(withdrawn=[VIP2])
    assert updates[1].mp_unreach is not None and updates[1].mp_unreach.withdrawn == (VIP6,)
    encoded_sizes(updates, EBGP)
    assert set(out.routes) == {VIP1}


def test_ipv6_travels_in_mp_reach_with_the_local_address() -> None:
    out = AdjRibOut(ExportSettings(EBGP, SELF, SELF6, IPv6Address("fe80::252")))
    (update,) = out.diff(export_routes([active(VIP6)], out.settings))
    assert update.nlri == () and update.attributes.next_hop is None
    reach = update.mp_reach
    assert reach is not None and reach.family == IPV6_UNICAST
    assert reach.nlri == (VIP6,)
    assert reach.next_hop == SELF6 and reach.link_local_next_hop == IPv6Address("fe80::252")
    assert update.attributes.as_path == AsPath.sequence([LOCAL_AS])
    encoded_sizes([update], EBGP)


def many_adverts(count: int, version: int = 4) -> list[RouteAdvert]:
    if version == 4:
        base = int(IPv4Address("10.0.0.0"))
        return [active(IPv4Network((base + i, 32))) for i in range(count)]
    base6 = int(IPv6Address("2001:db8::"))
    return [active(IPv6Network((base6 + (i << 64), 64))) for i in range(count)]


def test_ten_thousand_prefixes_are_split_within_4096_octets() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    adverts = many_adverts(10_000)
    updates = out.diff(export_routes(adverts, EBGP_SETTINGS))
    sizes = encoded_sizes(updates, EBGP)
    assert max(sizes) <= 4096
    assert min(sizes[:-1]) > 4096 - 5  # each full message is packed
    announced = [prefix for update in updates for prefix in update.nlri]
    assert len(announced) == 10_000 and set(announced) == {a.prefix for a in adverts}
    withdrawals = out.diff({})
    assert max(encoded_sizes(withdrawals, EBGP)) <= 4096
    assert sum(len(u.withdrawn) for u in withdrawals) == 10_000


def test_extended_message_allows_bigger_updates() -> None:
    negotiated = attrs.evolve(EBGP, extended_message=True)
    settings = ExportSettings(negotiated, SELF, SELF6)
    updates = AdjRibOut(settings).diff(export_routes(many_adverts(30_000), settings))
    sizes = encoded_sizes(updates, negotiated)
    assert len(updates) == 3 and max(sizes) <= 65535


def test_ipv6_announcements_and_withdrawals_are_split_too() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    updates = out.diff(export_routes(many_adverts(3000, version=6), EBGP_SETTINGS))
    assert len(updates) > 1 and max(encoded_sizes(updates, EBGP)) <= 4096
    assert sum(len(u.mp_reach.nlri) for u in updates if u.mp_reach) == 3000
    withdrawals = out.diff({})
    assert len(withdrawals) > 1 and max(encoded_sizes(withdrawals, EBGP)) <= 4096


def test_full_table_ends_with_end_of_rib_per_family() -> None:
    out = AdjRibOut(EBGP_SETTINGS)
    out.diff(export_routes([active(VIP1), backup(VIP2), active(VIP6)], EBGP_SETTINGS))
    updates = out.full()
    assert [is_end_of_rib(u) for u in updates] == [False, False, False, True, True]
    assert updates[-2] == Update()  # IPv4 End-of-RIB
    assert updates[-1].mp_unreach is not None and updates[-1].mp_unreach.family == IPV6_UNICAST
    encoded_sizes(updates, EBGP)
    out.clear()
    assert len(out) == 0 and len(out.full()) == 2


def test_what_we_send_is_what_the_peer_learns() -> None:
    """Diffs encoded, decoded and applied to an Adj-RIB-In reproduce the advertised set."""
    out = AdjRibOut(EBGP_SETTINGS)
    receiver = AdjRibIn(PeerInfo(SELF, SELF, LOCAL_AS, True))
    rounds = [
        [active(VIP1), active(VIP2), active(VIP6)],
        [backup(VIP1), active(VIP2), active(VIP6), active(VIP3)],
        [backup(VIP3)],
        [],
    ]
    for adverts in rounds:
        wanted = export_routes(adverts, EBGP_SETTINGS)
        for update in out.diff(wanted):
            decoded = decode(encode(update, EBGP), EBGP)
            assert isinstance(decoded, Update)
            receiver.apply(decoded)
        learned = {route.prefix: route.attributes for route in receiver}
        assert learned.keys() == wanted.keys()
        for prefix, attributes in learned.items():
            assert attributes.med == wanted[prefix].med
            assert attributes.as_path == wanted[prefix].as_path
        for route in receiver:
            assert route.path.next_hop == (SELF if route.prefix.version == 4 else SELF6)
    assert ip_network("198.51.100.12/32") not in receiver
