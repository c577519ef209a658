"""The node's intent: a pure function of (running config, HA roles, endpoint health, VIP pool
allocation).

Every reconciler makes the world equal to its part of the intent and none reaches into
another: the HA service owns the VIP addresses of its groups while active (`group_vips`,
`owned_vips`), the BGP speaker advertises `adverts`, the dataplane programs `services`.

Rules:

* a service's VIP is its ``vip:``, or the address its ``pool:`` allocated (none: the service
  is neither programmed nor advertised, and `pool_conflicts` says why);
* a VIP is governed by the role of the HA group that holds it (its ``vips:`` or an address
  from one of its ``pools:``); a VIP outside every group, or a node without HA, is active;
* a service is advertised when BGP is configured, at least one of its endpoints is healthy
  (route health injection) and its VIP's role is active or backup (each with its configured
  attributes); INIT and FAULT advertise nothing;
* every service with a VIP is programmed into the dataplane whatever the role (a backup is
  ready the moment it takes over), each endpoint active while healthy.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping, Sequence

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
class ServiceIntent:
    """One configured service as this node must serve it."""

    service: Service
    vip: IPAddress | None  # explicit or allocated; None: its pool gave it no address
    endpoints_up: tuple[bool, ...]  # per configured endpoint, in order
    role: HaRole  # the role governing its VIP
    advertised: bool
    #: why it is not advertised (None when it is)
    withdrawn_reason: str | None = None

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def healthy(self) -> bool:
        return any(self.endpoints_up)


@attrs.frozen
class NodeIntent:
    owned_vips: frozenset[tuple[str, IPAddress]]  # (group interface, address) of active groups
    adverts: tuple[RouteAdvert, ...]  # sorted by prefix
    services: tuple[ServiceIntent, ...] = ()  # in config order
    #: each HA group's VIPs: its ``vips`` then its pools' allocated addresses (sorted)
    group_vips: tuple[tuple[int, tuple[IPAddress, ...]], ...] = ()
    pool_conflicts: tuple[str, ...] = ()
    #: the running configuration's generation it was computed from (set by the controller)
    generation: int = 0

    def vips_of_group(self, group_id: int) -> tuple[IPAddress, ...] | None:
        return dict(self.group_vips).get(group_id)


def host_prefix(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(f"{address}/{address.max_prefixlen}")


def service_vip(service: Service, pool_addresses: Mapping[str, IPAddress]) -> IPAddress | None:
    """The service's VIP: explicit, else the address its pool allocated (None: none yet)."""
    if service.vip is not None:
        return service.vip
    return pool_addresses.get(service.name)


def group_vips(
    cfg: Config, pool_addresses: Mapping[str, IPAddress]
) -> dict[int, tuple[IPAddress, ...]]:
    """Each HA group's VIPs: its configured ``vips``, then (sorted) the addresses allocated
    from its ``pools`` to services."""
    if cfg.ha is None:
        return {}
    out: dict[int, tuple[IPAddress, ...]] = {}
    for group in cfg.ha.groups:
        pooled = {
            address
            for service in cfg.services
            if service.pool in group.pools
            and (address := pool_addresses.get(service.name)) is not None
            and address not in group.vips
        }
        out[group.id] = (*group.vips, *sorted(pooled, key=lambda a: (a.version, a)))
    return out


def vip_role(
    vip: IPAddress,
    groups: Mapping[int, tuple[IPAddress, ...]],
    roles: Mapping[int, HaRole],
) -> HaRole:
    """The role that governs a VIP: that of the HA group holding it; active otherwise."""
    for group_id, vips in groups.items():
        if vip in vips:
            return roles.get(group_id, HaRole.INIT)
    return HaRole.ACTIVE  # a VIP outside every group (or without HA) is served active-active


def endpoints_up(service: Service, health: EndpointHealth) -> tuple[bool, ...]:
    return tuple(health.get((service.name, ep.address, ep.port), True) for ep in service.endpoints)


def advert_attrs(cfg: Config, role: HaRole) -> AdvertAttrs | None:
    """Attributes for a VIP route in `role`; None when the route must not be advertised."""
    if cfg.bgp is None:
        return None
    if role is HaRole.ACTIVE:
        return cfg.bgp.advertise.active
    if role is HaRole.BACKUP:
        return cfg.bgp.advertise.backup
    return None  # INIT and FAULT advertise nothing


def _service_intent(
    cfg: Config,
    service: Service,
    vip: IPAddress | None,
    groups: Mapping[int, tuple[IPAddress, ...]],
    roles: Mapping[int, HaRole],
    health: EndpointHealth,
) -> ServiceIntent:
    up = endpoints_up(service, health)
    role = vip_role(vip, groups, roles) if vip is not None else HaRole.INIT
    reason: str | None = None
    if vip is None:
        reason = f"no address from pool {service.pool}"
    elif cfg.bgp is None:
        reason = "bgp not configured"
    elif not any(up):
        reason = "no healthy endpoint"
    elif advert_attrs(cfg, role) is None:
        reason = f"ha role {role.value}"
    return ServiceIntent(service, vip, up, role, reason is None, reason)


def _adverts(cfg: Config, services: Sequence[ServiceIntent]) -> tuple[RouteAdvert, ...]:
    adverts: dict[IPNetwork, RouteAdvert] = {}
    for intent in services:
        attrs_for_role = advert_attrs(cfg, intent.role)
        if not intent.advertised or intent.vip is None or attrs_for_role is None:
            continue
        service = intent.service
        prefix = host_prefix(intent.vip)
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
    return tuple(sorted(adverts.values(), key=lambda a: (a.prefix.version, a.prefix)))


def compute_intent(
    cfg: Config,
    roles: Mapping[int, HaRole],
    health: EndpointHealth | None = None,
    pool_addresses: Mapping[str, IPAddress] | None = None,
    pool_conflicts: tuple[str, ...] = (),
) -> NodeIntent:
    health = health or {}
    pool_addresses = pool_addresses or {}
    groups = group_vips(cfg, pool_addresses)
    services = tuple(
        _service_intent(cfg, s, service_vip(s, pool_addresses), groups, roles, health)
        for s in cfg.services
    )
    owned = frozenset(
        (group.interface, vip)
        for group in (cfg.ha.groups if cfg.ha is not None else ())
        if roles.get(group.id) is HaRole.ACTIVE
        for vip in groups[group.id]
    )
    return NodeIntent(
        owned_vips=owned,
        adverts=_adverts(cfg, services),
        services=services,
        group_vips=tuple(sorted(groups.items())),
        pool_conflicts=pool_conflicts,
    )
