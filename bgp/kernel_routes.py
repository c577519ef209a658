"""Install the Loc-RIB's best routes into the kernel routing table (pyroute2, blocking).

Everything acts on the network namespace of the calling thread and only on routes carrying our
protocol number (``PROTO``): routes of other protocols are read only to avoid clobbering them.
The functions block on netlink, so the Trio shell runs them with ``trio.to_thread.run_sync``.

Our routes use metric ``METRIC`` (20, like other BGP daemons), so a static or kernel route for
the same prefix with another metric lives next to ours; one with the same metric is reported as
a conflict and left alone. Several next hops make one multipath (ECMP) route.

``sync_routes(desired)`` makes the kernel's set of our routes equal to ``desired``, touching
only what differs, so running it again is a no-op; `flush` removes all of ours.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any, TypeAlias

import attrs

from bgp.decision import Selection
from bgp.types import Prefix

# triolb's own route protocol number: 186 is "bgp" in rt_protos and FRR uses it.
PROTO = 201
METRIC = 20
MAIN_TABLE = 254
_RTN_UNICAST = 1

IPAddress: TypeAlias = IPv4Address | IPv6Address


@attrs.frozen(order=True)
class NextHop:
    """A gateway; ``ifindex`` None lets the kernel pick the interface (an on-link gateway)."""

    gateway: IPAddress = attrs.field(converter=ip_address)
    ifindex: int | None = None

    def __str__(self) -> str:
        return f"via {self.gateway}" + (f" dev #{self.ifindex}" if self.ifindex else "")


NextHopLike: TypeAlias = NextHop | IPAddress


@attrs.frozen
class KernelRoute:
    prefix: Prefix
    nexthops: frozenset[NextHop]
    metric: int


@attrs.frozen
class RouteChanges:
    """What `sync_routes` did. ``conflicts``: another protocol's route with the same prefix
    and metric was in the way (left alone); ``failed``: the kernel refused (prefix, reason)."""

    added: tuple[Prefix, ...] = ()
    replaced: tuple[Prefix, ...] = ()
    removed: tuple[Prefix, ...] = ()
    conflicts: tuple[Prefix, ...] = ()
    failed: tuple[tuple[Prefix, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.replaced or self.removed)


def desired_routes(
    selections: Iterable[tuple[Prefix, Selection]],
) -> dict[Prefix, list[NextHop]]:
    """Pure: the routes to install from `LocRib.selections()` — each prefix with the distinct
    next hops of its multipath set."""
    out: dict[Prefix, list[NextHop]] = {}
    for prefix, selection in selections:
        hops = dict.fromkeys(
            NextHop(path.next_hop) for path in selection.multipath if path.next_hop is not None
        )
        if hops:
            out[prefix] = sorted(hops)
    return out


def _hop(value: NextHopLike) -> NextHop:
    return value if isinstance(value, NextHop) else NextHop(value)


def _family(prefix: Prefix) -> int:
    return socket.AF_INET if prefix.version == 4 else socket.AF_INET6


@contextlib.contextmanager
def _iproute(ipr: Any | None) -> Iterator[Any]:
    if ipr is not None:
        yield ipr
        return
    from pyroute2 import IPRoute

    with IPRoute() as own:
        yield own


def _dump(
    ipr: Any, table: int, proto: int
) -> tuple[dict[Prefix, KernelRoute], set[tuple[Prefix, int]]]:
    """Our routes in ``table``, and (prefix, metric) of every other unicast route there."""
    ours: dict[Prefix, KernelRoute] = {}
    others: set[tuple[Prefix, int]] = set()
    for family, zero in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for msg in ipr.route("dump", family=family):
            if (msg.get_attr("RTA_TABLE") or msg["table"]) != table:
                continue
            if msg["type"] != _RTN_UNICAST:
                continue
            prefix = ip_network(f"{msg.get_attr('RTA_DST') or zero}/{msg['dst_len']}")
            metric = msg.get_attr("RTA_PRIORITY") or 0
            if msg["proto"] != proto:
                others.add((prefix, metric))
                continue
            hops = set()
            if msg.get_attr("RTA_GATEWAY") is not None:
                hops.add(NextHop(msg.get_attr("RTA_GATEWAY"), msg.get_attr("RTA_OIF")))
            for nh in msg.get_attr("RTA_MULTIPATH") or ():
                if nh.get_attr("RTA_GATEWAY") is not None:
                    hops.add(NextHop(nh.get_attr("RTA_GATEWAY"), nh["oif"]))
            held = ours.get(prefix)
            if held is not None and held.metric == metric:  # old kernels: one message per hop
                hops |= held.nexthops
            ours[prefix] = KernelRoute(prefix, frozenset(hops), metric)
    return ours, others


def installed_routes(
    proto: int = PROTO, table: int = MAIN_TABLE, ipr: Any | None = None
) -> dict[Prefix, KernelRoute]:
    """Our routes currently in the kernel."""
    with _iproute(ipr) as handle:
        return _dump(handle, table, proto)[0]


def _same(want: frozenset[NextHop], have: frozenset[NextHop]) -> bool:
    """``have`` (as dumped, interfaces filled in) satisfies ``want``."""
    gateways = {hop.gateway for hop in want}
    return (
        len(have) == len(gateways)
        and {hop.gateway for hop in have} == gateways
        and all(hop.ifindex is None or hop in have for hop in want)
    )


def _route_args(
    prefix: Prefix, hops: Iterable[NextHop], proto: int, table: int, metric: int
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "dst": str(prefix),
        "family": _family(prefix),
        "proto": proto,
        "table": table,
        "priority": metric,
    }
    ordered = sorted(hops)
    specs = [
        {"gateway": str(hop.gateway), **({"oif": hop.ifindex} if hop.ifindex else {})}
        for hop in ordered
    ]
    if len(specs) == 1:
        args.update(specs[0])
    else:
        args["multipath"] = specs
    return args


def install_route(
    prefix: Prefix,
    nexthops: Sequence[NextHopLike],
    proto: int = PROTO,
    table: int = MAIN_TABLE,
    metric: int = METRIC,
    ipr: Any | None = None,
) -> None:
    """Add or replace our route for ``prefix`` (several next hops: multipath)."""
    if not nexthops:
        raise ValueError(f"route {prefix} needs at least one next hop")
    with _iproute(ipr) as handle:
        handle.route("replace", **_route_args(prefix, map(_hop, nexthops), proto, table, metric))


def remove_route(
    prefix: Prefix,
    proto: int = PROTO,
    table: int = MAIN_TABLE,
    metric: int = METRIC,
    ipr: Any | None = None,
) -> bool:
    """Delete our route for ``prefix``; False when there was none."""
    from pyroute2 import NetlinkError

    with _iproute(ipr) as handle:
        try:
            handle.route(
                "del",
                dst=str(prefix),
                family=_family(prefix),
                proto=proto,
                table=table,
                priority=metric,
            )
        except NetlinkError as exc:
            if exc.code in (errno.ESRCH, errno.ENOENT):  # no such route
                return False
            raise
    return True


def sync_routes(
    desired: Mapping[Prefix, Sequence[NextHopLike]],
    proto: int = PROTO,
    table: int = MAIN_TABLE,
    metric: int = METRIC,
    ipr: Any | None = None,
) -> RouteChanges:
    """Make our routes in ``table`` exactly ``desired`` (a prefix with no next hops counts as
    absent). Idempotent; routes of other protocols are never changed."""
    from pyroute2 import NetlinkError

    want = {prefix: frozenset(map(_hop, hops)) for prefix, hops in desired.items() if len(hops) > 0}
    added: list[Prefix] = []
    replaced: list[Prefix] = []
    removed: list[Prefix] = []
    failed: list[tuple[Prefix, str]] = []
    with _iproute(ipr) as handle:
        ours, others = _dump(handle, table, proto)
        conflicts = [prefix for prefix in want if (prefix, metric) in others]
        for prefix in conflicts:
            del want[prefix]
        for prefix, held in ours.items():
            if prefix in want and held.metric == metric:
                continue
            try:
                remove_route(prefix, proto, table, held.metric, handle)
            except NetlinkError as exc:
                failed.append((prefix, str(exc)))
                continue
            if prefix not in want:
                removed.append(prefix)
        for prefix, hops in want.items():
            current = ours.get(prefix)
            if current is not None and current.metric == metric and _same(hops, current.nexthops):
                continue
            try:
                handle.route("replace", **_route_args(prefix, hops, proto, table, metric))
            except NetlinkError as exc:
                failed.append((prefix, str(exc)))
                continue
            (added if current is None else replaced).append(prefix)
    return RouteChanges(
        tuple(added), tuple(replaced), tuple(removed), tuple(conflicts), tuple(failed)
    )


def flush(proto: int = PROTO, table: int = MAIN_TABLE, ipr: Any | None = None) -> int:
    """Remove every route of ours from ``table``; returns how many."""
    return len(sync_routes({}, proto, table, ipr=ipr).removed)
