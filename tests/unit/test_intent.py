"""compute_intent: properties over generated configs, roles, health and pool allocations, and
the rules by example."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from appliance.config.model import (
    AdvertAttrs,
    Advertise,
    Bgp,
    BgpPeer,
    Config,
    Endpoint,
    Ha,
    HaGroup,
    Node,
    Service,
    VipPool,
)
from appliance.config.values import IPAddress
from appliance.intent import EndpointHealth, HaRole, NodeIntent, compute_intent, host_prefix

IP = ipaddress.ip_address
VIPS = tuple(IP(f"192.168.80.{200 + i}") for i in range(4))
POOL = VipPool("lab", ipaddress.ip_network("198.51.100.0/24"))
POOLED = tuple(IP(f"198.51.100.{10 + i}") for i in range(4))
EPS = tuple(Endpoint(IP(f"192.168.80.{101 + i}"), 8080) for i in range(3))
BGP = Bgp(
    asn=65100,
    router_id=ipaddress.IPv4Address("192.168.80.252"),
    peers=(BgpPeer(IP("192.168.80.254"), 65101),),
    advertise=Advertise(AdvertAttrs(med=10), AdvertAttrs(med=20, prepend=3)),
)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[Config, dict[int, HaRole], EndpointHealth, dict[str, IPAddress]]:
    """A config (services on explicit or pool VIPs, optional HA groups and BGP), roles, health
    and a pool allocation."""
    services = []
    pools: dict[str, IPAddress] = {}
    for i in range(draw(st.integers(1, 5))):
        eps = tuple(draw(st.lists(st.sampled_from(EPS), min_size=1, max_size=3, unique=True)))
        name = f"s{i}"
        if draw(st.booleans()):
            services.append(Service(name, 80 + i, eps, vip=draw(st.sampled_from(VIPS))))
        else:
            services.append(Service(name, 80 + i, eps, pool="lab"))
            if draw(st.booleans()):  # allocated (or not: the pool was full)
                pools[name] = POOLED[i % len(POOLED)]
    ha = None
    if draw(st.booleans()):
        split = draw(st.integers(0, len(VIPS)))
        groups: tuple[HaGroup, ...] = (
            HaGroup(1, "eth0", VIPS[:split] or VIPS[:1], pools=("lab",)),
            HaGroup(2, "eth1", VIPS[split:] or VIPS[-1:]),
        )
        # one group per VIP: the second group keeps only what the first does not hold
        if set(groups[1].vips) & set(groups[0].vips):
            groups = groups[:1]
        ha = Ha(groups)
    cfg = Config(
        node=Node("n1", 1),
        vip_pools=(POOL,),
        services=tuple(services),
        ha=ha,
        bgp=BGP if draw(st.booleans()) else None,
    )
    roles = {g.id: draw(st.sampled_from(list(HaRole))) for g in (ha.groups if ha else ())}
    health = {
        (s.name, ep.address, ep.port): draw(st.booleans()) for s in services for ep in s.endpoints
    }
    return cfg, roles, health, pools


def _group_of(intent: NodeIntent, vip: IPAddress) -> int | None:
    return next((gid for gid, vips in intent.group_vips if vip in vips), None)


@given(scenarios())
def test_a_group_not_active_owns_no_vip(
    case: tuple[Config, dict[int, HaRole], EndpointHealth, dict[str, IPAddress]],
) -> None:
    cfg, roles, health, pools = case
    intent = compute_intent(cfg, roles, health, pools)
    for _, vip in intent.owned_vips:
        group = _group_of(intent, vip)
        assert group is not None and roles[group] is HaRole.ACTIVE
    interfaces = {g.id: g.interface for g in (cfg.ha.groups if cfg.ha else ())}
    for gid, vips in intent.group_vips:
        interface = interfaces[gid]
        owned = {(interface, v) for v in vips} <= intent.owned_vips
        assert owned == (roles[gid] is HaRole.ACTIVE)


@given(scenarios())
def test_a_service_with_no_healthy_endpoint_is_never_advertised(
    case: tuple[Config, dict[int, HaRole], EndpointHealth, dict[str, IPAddress]],
) -> None:
    cfg, roles, health, pools = case
    intent = compute_intent(cfg, roles, health, pools)
    advertised = {a.prefix for a in intent.adverts}
    for service in intent.services:
        if not service.healthy:
            assert not service.advertised
            assert service.withdrawn_reason is not None
    # a VIP route exists exactly when one of its services is advertised
    expected = {host_prefix(s.vip) for s in intent.services if s.advertised and s.vip}
    assert advertised == expected
    if cfg.bgp is None:
        assert not intent.adverts


@given(scenarios())
def test_only_active_or_backup_vips_are_advertised_with_the_role_attributes(
    case: tuple[Config, dict[int, HaRole], EndpointHealth, dict[str, IPAddress]],
) -> None:
    cfg, roles, health, pools = case
    intent = compute_intent(cfg, roles, health, pools)
    by_prefix = {a.prefix: a for a in intent.adverts}
    for service in intent.services:
        if not service.advertised:
            continue
        assert service.vip is not None and cfg.bgp is not None
        assert service.role in (HaRole.ACTIVE, HaRole.BACKUP)
        advertise = cfg.bgp.advertise
        expected = advertise.active if service.role is HaRole.ACTIVE else advertise.backup
        assert by_prefix[host_prefix(service.vip)].med == expected.med


@given(scenarios())
def test_active_active_nodes_compute_identical_adverts(
    case: tuple[Config, dict[int, HaRole], EndpointHealth, dict[str, IPAddress]],
) -> None:
    cfg, _, health, pools = case
    cfg = Config(node=cfg.node, vip_pools=cfg.vip_pools, services=cfg.services, bgp=cfg.bgp)
    other = Config(node=Node("n2", 2), vip_pools=cfg.vip_pools, services=cfg.services, bgp=cfg.bgp)
    one, two = compute_intent(cfg, {}, health, pools), compute_intent(other, {}, health, pools)
    assert one.adverts == two.adverts
    assert one.services == two.services


@given(scenarios())
def test_every_service_with_a_vip_is_in_the_intent_whatever_the_role(
    case: tuple[Config, dict[int, HaRole], EndpointHealth, dict[str, IPAddress]],
) -> None:
    cfg, roles, health, pools = case
    intent = compute_intent(cfg, roles, health, pools)
    assert [s.name for s in intent.services] == [s.name for s in cfg.services]
    for service in intent.services:
        expected = service.service.vip or pools.get(service.name)
        assert service.vip == expected
        assert len(service.endpoints_up) == len(service.service.endpoints)


def test_pool_addresses_join_the_group_holding_the_pool() -> None:
    cfg = Config(
        node=Node("n1", 1),
        vip_pools=(POOL,),
        services=(Service("a", 80, EPS, pool="lab"), Service("b", 81, EPS, pool="lab")),
        ha=Ha((HaGroup(1, "eth0", (VIPS[0],), pools=("lab",)),)),
        bgp=BGP,
    )
    pools = {"b": POOLED[0], "a": POOLED[1]}
    backup = compute_intent(cfg, {1: HaRole.BACKUP}, {}, pools)
    assert backup.vips_of_group(1) == (VIPS[0], POOLED[0], POOLED[1])
    assert backup.owned_vips == frozenset()
    assert [(str(a.prefix), a.med, a.prepend) for a in backup.adverts] == [
        ("198.51.100.10/32", 20, 3),
        ("198.51.100.11/32", 20, 3),
    ]
    active = compute_intent(cfg, {1: HaRole.ACTIVE}, {}, pools)
    assert active.owned_vips == {("eth0", VIPS[0]), ("eth0", POOLED[0]), ("eth0", POOLED[1])}
    assert {a.med for a in active.adverts} == {10}


def test_withdrawn_reasons() -> None:
    down = {("web", ep.address, ep.port): False for ep in EPS}
    cfg = Config(
        node=Node("n1", 1),
        vip_pools=(POOL,),
        services=(
            Service("web", 80, EPS, vip=VIPS[0]),
            Service("unallocated", 81, EPS, pool="lab"),
            Service("elsewhere", 82, EPS, vip=VIPS[1]),
        ),
        ha=Ha((HaGroup(1, "eth0", (VIPS[1],)),)),
        bgp=BGP,
    )
    intent = compute_intent(cfg, {1: HaRole.FAULT}, down, {}, ("service unallocated: full",))
    reasons = {s.name: s.withdrawn_reason for s in intent.services}
    assert reasons == {
        "web": "no healthy endpoint",
        "unallocated": "no address from pool lab",
        "elsewhere": "ha role fault",
    }
    assert intent.adverts == ()
    assert intent.pool_conflicts == ("service unallocated: full",)
    no_bgp = compute_intent(Config(node=cfg.node, services=cfg.services[:1]), {})
    assert [s.withdrawn_reason for s in no_bgp.services] == ["bgp not configured"]


def test_an_endpoint_recovering_re_advertises() -> None:
    cfg = Config(node=Node("n1", 1), services=(Service("web", 80, EPS, vip=VIPS[0]),), bgp=BGP)
    down = {("web", ep.address, ep.port): False for ep in EPS}
    assert compute_intent(cfg, {}, down).adverts == ()
    one_up = {**down, ("web", EPS[2].address, EPS[2].port): True}
    (advert,) = compute_intent(cfg, {}, one_up).adverts
    assert advert.prefix == host_prefix(VIPS[0])
