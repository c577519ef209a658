"""services_from_intent: the dataplane part of the node's intent (pure)."""

from __future__ import annotations

import ipaddress

from appliance.config.model import (
    Config,
    Endpoint,
    NatMode,
    Node,
    Protocol,
    Service,
)
from appliance.config.model import Selection as ConfigSelection
from appliance.config.values import IPAddress
from appliance.intent import EndpointHealth, compute_intent
from bpf.layout import Mode, Selection
from bpf.model import DpEndpoint, DpService, IpProto, services_from_intent, skipped_services

IP = ipaddress.ip_address
EPS = (Endpoint(IP("192.168.80.101"), 8080, weight=2), Endpoint(IP("192.168.80.102"), 8080))


def _cfg(*services: Service) -> Config:
    return Config(node=Node("n1", 1), services=services)


def services_from_config(
    cfg: Config,
    health: EndpointHealth | None = None,
    pools: dict[str, IPAddress] | None = None,
) -> tuple[DpService, ...]:
    return services_from_intent(compute_intent(cfg, {}, health, pools))


def test_a_vip_service_maps_with_every_endpoint_active() -> None:
    (svc,) = services_from_config(
        _cfg(Service("web", 80, EPS, vip=IP("198.51.100.10"), selection=ConfigSelection.MAGLEV))
    )
    assert svc.key == (IP("198.51.100.10"), 80, IpProto.TCP)
    assert (svc.mode, svc.selection, svc.snat_addr, svc.name) == (
        Mode.DEFAULT,
        Selection.MAGLEV,
        None,
        "web",
    )
    assert svc.endpoints == (
        DpEndpoint(IP("192.168.80.101"), 8080, 2, True),
        DpEndpoint(IP("192.168.80.102"), 8080, 1, True),
    )


def test_fullnat_sources_from_the_service_source_else_the_vip() -> None:
    vip = IP("198.51.100.10")
    with_source = Service("a", 80, EPS, vip=vip, mode=NatMode.FULLNAT, source=IP("198.51.100.99"))
    without = Service("b", 81, EPS, vip=vip, mode=NatMode.FULLNAT, protocol=Protocol.UDP)
    onearm = Service("c", 82, EPS, vip=vip, mode=NatMode.ONEARM)
    a, b, c = services_from_config(_cfg(with_source, without, onearm))
    assert a.snat_addr == IP("198.51.100.99") and a.mode is Mode.FULLNAT
    assert b.snat_addr == vip and b.protocol is IpProto.UDP
    assert c.snat_addr is None and c.mode is Mode.ONEARM


def test_unallocated_pool_and_ipv6_services_are_left_out_and_ipv6_named() -> None:
    pooled = Service("pool", 80, EPS, pool="p1")
    v6 = Service("v6", 80, (Endpoint(IP("2001:db8::1"), 80),), vip=IP("2001:db8::10"))
    ok = Service("ok", 80, EPS, vip=IP("198.51.100.10"))
    cfg = _cfg(pooled, v6, ok)
    assert [s.name for s in services_from_config(cfg)] == ["ok"]
    assert skipped_services(compute_intent(cfg, {})) == ("v6",)


def test_a_pool_service_is_programmed_on_its_allocated_address() -> None:
    cfg = _cfg(Service("pool", 80, EPS, pool="p1"))
    (svc,) = services_from_config(cfg, pools={"pool": IP("198.51.100.7")})
    assert svc.key == (IP("198.51.100.7"), 80, IpProto.TCP)


def test_a_repeated_service_key_keeps_the_first() -> None:
    vip = IP("198.51.100.10")
    first = Service("first", 80, EPS, vip=vip)
    second = Service("second", 80, EPS[:1], vip=vip)
    assert [s.name for s in services_from_config(_cfg(first, second))] == ["first"]


def test_an_endpoint_probed_down_is_not_active() -> None:
    cfg = _cfg(Service("web", 80, EPS, vip=IP("198.51.100.10")))
    health = {
        ("web", IP("192.168.80.102"), 8080): False,
        ("other", IP("192.168.80.101"), 8080): False,
    }
    (svc,) = services_from_config(cfg, health)
    assert [e.active for e in svc.endpoints] == [True, False]
