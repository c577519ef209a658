"""Checks across fields and sections, run on a ``Draft`` after its structure was read.

Items that failed to read are None in the draft and are skipped; a check that needs a whole list
(for example "this pool exists") is skipped when that list had errors, so a single mistake does not
turn into a chain of follow-on reports.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from .model import Bgp, HaGroup, Service, Sync, TrackType, VipPool
from .reader import Context
from .structure import Draft
from .structure_ha import HaDraft
from .values import IPAddress, parse_ip

T = TypeVar("T")


def crosscheck(draft: Draft, ctx: Context) -> None:
    pools = draft.vip_pools.get() if draft.vip_pools.ok else None
    services = draft.services.get() if draft.services.ok else None
    if pools is not None:
        _check_pools(pools, ctx)
    if services is not None:
        _check_services(services, pools, ctx)
    ha = draft.ha.value
    if isinstance(ha, HaDraft):
        bgp_known = draft.bgp.ok
        bgp = draft.bgp.value if isinstance(draft.bgp.value, Bgp) else None
        _check_ha(ha, services, bgp_known, bgp, ctx)
        if pools is not None:
            _check_group_pools(ha, pools, ctx)
    if isinstance(draft.sync.value, Sync):
        _check_sync(draft.sync.value, ctx)


def _complete(items: tuple[T | None, ...] | None) -> tuple[T, ...] | None:
    """All items, or None when some failed to read."""
    if items is None or any(item is None for item in items):
        return None
    return tuple(item for item in items if item is not None)


def _present(items: tuple[T | None, ...]) -> Iterable[tuple[int, T]]:
    return ((i, item) for i, item in enumerate(items) if item is not None)


def _family(address: IPAddress) -> str:
    return f"IPv{address.version}"


def _check_pools(pools: tuple[VipPool | None, ...], ctx: Context) -> None:
    seen: dict[str, int] = {}
    placed: list[tuple[int, VipPool]] = []
    for i, pool in _present(pools):
        if pool.name in seen:
            ctx.report_at(
                f"vip_pools[{i}].name", f"duplicate pool name (also vip_pools[{seen[pool.name]}])"
            )
        seen.setdefault(pool.name, i)
        for j, other in placed:
            if pool.cidr.version == other.cidr.version and pool.cidr.overlaps(other.cidr):
                ctx.report_at(f"vip_pools[{i}].cidr", f"overlaps vip_pools[{j}] ({other.cidr})")
        placed.append((i, pool))


def _check_services(
    services: tuple[Service | None, ...], pools: tuple[VipPool | None, ...] | None, ctx: Context
) -> None:
    all_pools = _complete(pools)
    pool_by_name = {p.name: p for p in all_pools} if all_pools is not None else None
    names: dict[str, int] = {}
    listeners: dict[tuple[str, int, str], int] = {}
    for i, svc in _present(services):
        path = f"services[{i}]"
        if svc.name in names:
            ctx.report_at(
                f"{path}.name", f"duplicate service name (also services[{names[svc.name]}])"
            )
        names.setdefault(svc.name, i)
        where = ("vip", str(svc.vip)) if svc.vip is not None else ("pool", str(svc.pool))
        listener = (f"{where[0]} {where[1]}", svc.port, svc.protocol.value)
        if listener in listeners:
            ctx.report_at(
                f"{path}.{where[0]}",
                f"services[{listeners[listener]}] already uses {where[0]} {where[1]} "
                f"port {svc.port}/{svc.protocol}",
            )
        listeners.setdefault(listener, i)
        family: int | None = None
        described = ""
        if svc.vip is not None:
            family, described = svc.vip.version, f"vip {svc.vip}"
        elif pool_by_name is not None and svc.pool is not None:
            pool = pool_by_name.get(svc.pool)
            if pool is None:
                known = ", ".join(sorted(pool_by_name)) or "none declared"
                ctx.report_at(f"{path}.pool", f"unknown pool {svc.pool!r} (vip_pools: {known})")
            else:
                family, described = pool.cidr.version, f"pool {pool.name} {pool.cidr}"
        _check_service_addresses(svc, path, family, described, ctx)


def _check_service_addresses(
    svc: Service, path: str, family: int | None, described: str, ctx: Context
) -> None:
    if family is not None and svc.source is not None and svc.source.version != family:
        ctx.report_at(
            f"{path}.source",
            f"{_family(svc.source)} source for an IPv{family} service ({described})",
        )
    seen: dict[tuple[IPAddress, int], int] = {}
    for j, ep in enumerate(svc.endpoints):
        ep_path = f"{path}.endpoints[{j}]"
        if family is not None and ep.address.version != family:
            ctx.report_at(
                f"{ep_path}.address",
                f"{_family(ep.address)} endpoint for an IPv{family} service ({described})",
            )
        key = (ep.address, ep.port)
        if key in seen:
            ctx.report_at(f"{ep_path}.address", f"duplicate endpoint (also endpoints[{seen[key]}])")
        seen.setdefault(key, j)


def _check_ha(
    ha: HaDraft,
    services: tuple[Service | None, ...] | None,
    bgp_known: bool,
    bgp: Bgp | None,
    ctx: Context,
) -> None:
    ids: dict[int, int] = {}
    vip_owner: dict[IPAddress, int] = {}
    for i, group in _present(ha.groups):
        path = f"ha.groups[{i}]"
        if group.id in ids:
            ctx.report_at(f"{path}.id", f"duplicate group id (also ha.groups[{ids[group.id]}])")
        ids.setdefault(group.id, i)
        _check_group_addresses(group, path, vip_owner, i, ctx)
        _check_tracks(group, path, services, bgp_known, bgp, ctx)
    all_groups = _complete(ha.groups)
    known_ids = {g.id for g in all_groups} if all_groups is not None else None
    names: dict[str, int] = {}
    member_of: dict[int, int] = {}
    for i, sync_group in _present(ha.sync_groups):
        path = f"ha.sync_groups[{i}]"
        if sync_group.name in names:
            ctx.report_at(
                f"{path}.name",
                f"duplicate sync group name (also ha.sync_groups[{names[sync_group.name]}])",
            )
        names.setdefault(sync_group.name, i)
        for j, group_id in enumerate(sync_group.groups):
            item = f"{path}.groups[{j}]"
            if known_ids is not None and group_id not in known_ids:
                ctx.report_at(item, f"no ha group has id {group_id}")
            elif group_id in member_of:
                other = member_of[group_id]
                where = "earlier in this list" if other == i else f"ha.sync_groups[{other}]"
                ctx.report_at(item, f"group {group_id} is already in a sync group ({where})")
            member_of.setdefault(group_id, i)


def _check_group_pools(ha: HaDraft, pools: tuple[VipPool | None, ...], ctx: Context) -> None:
    """A group's pools exist, are of its family, and belong to no other group."""
    all_pools = _complete(pools)
    by_name = {p.name: p for p in all_pools} if all_pools is not None else None
    owner: dict[str, int] = {}
    for i, group in _present(ha.groups):
        family = group.vips[0].version
        for j, pool_name in enumerate(group.pools):
            path = f"ha.groups[{i}].pools[{j}]"
            if pool_name in owner:
                where = (
                    "earlier in this list"
                    if owner[pool_name] == i
                    else f"ha.groups[{owner[pool_name]}]"
                )
                ctx.report_at(path, f"pool {pool_name} is already in a group ({where})")
            owner.setdefault(pool_name, i)
            if by_name is None:
                continue
            pool = by_name.get(pool_name)
            if pool is None:
                known = ", ".join(sorted(by_name)) or "none declared"
                ctx.report_at(path, f"unknown pool {pool_name!r} (vip_pools: {known})")
            elif pool.cidr.version != family:
                ctx.report_at(
                    path, f"IPv{pool.cidr.version} pool {pool_name} in a group of IPv{family} vips"
                )


def _check_group_addresses(
    group: HaGroup, path: str, vip_owner: dict[IPAddress, int], index: int, ctx: Context
) -> None:
    family = group.vips[0].version
    for j, vip in enumerate(group.vips):
        if vip.version != family:
            ctx.report_at(
                f"{path}.vips[{j}]",
                f"{_family(vip)} vip in a group whose first vip is IPv{family}; "
                "use one group per address family",
            )
        if vip in vip_owner:
            owner = vip_owner[vip]
            where = "earlier in this list" if owner == index else f"ha.groups[{owner}]"
            ctx.report_at(f"{path}.vips[{j}]", f"{vip} is already a vip ({where})")
        vip_owner.setdefault(vip, index)
    for j, peer in enumerate(group.unicast_peers):
        if peer.version != family:
            ctx.report_at(
                f"{path}.unicast_peers[{j}]", f"{_family(peer)} peer for IPv{family} vips"
            )


def _check_tracks(
    group: HaGroup,
    path: str,
    services: tuple[Service | None, ...] | None,
    bgp_known: bool,
    bgp: Bgp | None,
    ctx: Context,
) -> None:
    all_services = _complete(services)
    service_names = {s.name for s in all_services} if all_services is not None else None
    for j, tracked in enumerate(group.track):
        name_path = f"{path}.track[{j}].name"
        if tracked.type is TrackType.SERVICE and service_names is not None:
            if tracked.name not in service_names:
                ctx.report_at(name_path, f"no service is named {tracked.name!r}")
        elif tracked.type is TrackType.BGP_PEER and bgp_known:
            if bgp is None:
                ctx.report_at(name_path, "tracks a BGP peer but there is no bgp section")
            elif parse_ip(tracked.name) not in {p.address for p in bgp.peers}:
                ctx.report_at(name_path, f"{tracked.name} is not a peer in bgp.peers")


def _check_sync(sync: Sync, ctx: Context) -> None:
    family = sync.listen.host.version
    seen: dict[tuple[IPAddress, int], int] = {}
    for i, peer in enumerate(sync.peers):
        path = f"sync.peers[{i}]"
        if peer.host.version != family:
            ctx.report_at(path, f"{_family(peer.host)} peer for an IPv{family} sync.listen")
        elif peer == sync.listen:
            ctx.report_at(path, "is this node's own sync.listen address")
        key = (peer.host, peer.port)
        if key in seen:
            ctx.report_at(path, f"duplicate peer (also sync.peers[{seen[key]}])")
        seen.setdefault(key, i)
