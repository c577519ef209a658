"""The node's intent: a pure function of (running config, HA roles, endpoint health).

Every programmer (VIP addresses, BGP adverts, eBPF maps) makes the world equal to the intent;
none reaches into another. This first version computes what BGP advertises and which VIP
addresses the node owns; the dataplane's part joins with the dataplane.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping

import attrs

from .config.model import AdvertAttrs, Config, Service
from .config.values import Community, IPAddress, IPNetwork, LargeCommunity
from .state import StateKey


class HaRole(enum.StrEnum):
    """A node's role in one HA group (VRRP's MASTER is called active here)."""

    INIT = "init"
    BACKUP = "backup"
    ACTIVE = "active"
    FAULT = "fault"


#: The node's current intent, published by the intent controller.
INTENT = StateKey["NodeIntent"]("intent")


def role_key(group_id: int) -> StateKey[HaRole]:
    """Where the HA election publishes a group's role."""
    return StateKey(f"ha/{group_id}/role")


#: Endpoint health keyed by (service name, endpoint address, endpoint port); missing = healthy.
EndpointHealth = Mapping[tuple[str, IPAddress, int], bool]


@attrs.frozen(order=True)
class RouteAdvert:
    """One route this node advertises: a VIP host route with its role-dependent attributes."""

    prefix: IPNetwork
    med: int
    prepend: int
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()


@attrs.frozen
class NodeIntent:
    owned_vips: frozenset[tuple[str, IPAddress]]  # (interface, address)
    adverts: tuple[RouteAdvert, ...]  # sorted by prefix


def host_prefix(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(f"{address}/{address.max_prefixlen}")


def service_vip(service: Service) -> IPAddress | None:
    """The service's VIP; pool allocation arrives with the service controller."""
    return service.vip


def vip_role(cfg: Config, vip: IPAddress, roles: Mapping[int, HaRole]) -> HaRole:
    """The role that governs a VIP: that of the HA group holding it; active without HA."""
    if cfg.ha is None:
        return HaRole.ACTIVE
    for group in cfg.ha.groups:
        if vip in group.vips:
            return roles.get(group.id, HaRole.INIT)
    return HaRole.ACTIVE  # a VIP outside every group is served active-active


def service_healthy(service: Service, health: EndpointHealth) -> bool:
    return any(health.get((service.name, ep.address, ep.port), True) for ep in service.endpoints)


def advert_attrs(cfg: Config, role: HaRole) -> AdvertAttrs | None:
    """Attributes for a VIP route in `role`; None when the route must not be advertised."""
    if cfg.bgp is None:
        return None
    if role is HaRole.ACTIVE:
        return cfg.bgp.advertise.active
    if role is HaRole.BACKUP:
        return cfg.bgp.advertise.backup
    return None  # INIT and FAULT advertise nothing


def compute_intent(
    cfg: Config, roles: Mapping[int, HaRole], health: EndpointHealth | None = None
) -> NodeIntent:
    health = health or {}
    adverts: dict[IPNetwork, RouteAdvert] = {}
    for service in cfg.services:
        vip = service_vip(service)
        if vip is None or not service_healthy(service, health):
            continue
        attrs_for_role = advert_attrs(cfg, vip_role(cfg, vip, roles))
        if attrs_for_role is None:
            continue
        prefix = host_prefix(vip)
        earlier = adverts.get(prefix)
        communities = (*attrs_for_role.communities, *service.communities)
        large = (*attrs_for_role.large_communities, *service.large_communities)
        if earlier is not None:  # two services on one VIP: one route, all their communities
            communities = (*earlier.communities, *communities)
            large = (*earlier.large_communities, *large)
        adverts[prefix] = RouteAdvert(
            prefix,
            attrs_for_role.med,
            attrs_for_role.prepend,
            tuple(dict.fromkeys(communities)),
            tuple(dict.fromkeys(large)),
        )
    owned: set[tuple[str, IPAddress]] = set()
    if cfg.ha is not None:
        for group in cfg.ha.groups:
            if roles.get(group.id) is HaRole.ACTIVE:
                owned.update((group.interface, vip) for vip in group.vips)
    return NodeIntent(
        frozenset(owned),
        tuple(sorted(adverts.values(), key=lambda a: (a.prefix.version, a.prefix))),
    )
