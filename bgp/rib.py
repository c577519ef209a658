"""Routing information bases: Adj-RIB-In per peer and the Loc-RIB (RFC 4271 §3.2), pure.

Memory: a full table is a million prefixes, so per prefix the tables hold only a dict entry — a
compact int key (``address << 8 | length``, see `prefix_key`) and a reference to a shared `Path`.
A `Path` (attributes, peer, next hop, stale flag) is interned per peer: every prefix of one
UPDATE, and of any later UPDATE with equal attributes, points at the same object. `Route`
objects and ``ipaddress`` networks are made only when asked for.

Flow (the speaker wires it): ``AdjRibIn.apply(update)`` → `RouteChange`s → import policy
(`bgp.policy`) → ``LocRib.update(prefix, peer, path)`` → `BestChange`s → kernel routes.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import NamedTuple, TypeAlias

import attrs

from bgp.codec.attributes import PathAttributes
from bgp.codec.update import Update
from bgp.decision import DEFAULT_OPTIONS, DecisionOptions, Reason, Selection, explain, select
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Family, Prefix

IPAddress: TypeAlias = IPv4Address | IPv6Address
PrefixKey: TypeAlias = int


def prefix_key(prefix: Prefix) -> PrefixKey:
    """``network address << 8 | prefix length``: unique within one address family."""
    return (int(prefix.network_address) << 8) | prefix.prefixlen


def key_prefix(key: PrefixKey, family: Family) -> Prefix:
    if family[0] is Afi.IPV4:
        return IPv4Network((key >> 8, key & 0xFF))
    return IPv6Network((key >> 8, key & 0xFF))


def prefix_family(prefix: Prefix) -> Family:
    return IPV4_UNICAST if prefix.version == 4 else IPV6_UNICAST


@attrs.frozen
class PeerInfo:
    """Who a path was learned from; ``address`` identifies the peer in the Loc-RIB."""

    address: IPAddress
    router_id: IPv4Address
    asn: int
    ebgp: bool
    igp_metric: int = 0

    def __str__(self) -> str:
        return f"{self.address} AS{self.asn} ({'eBGP' if self.ebgp else 'iBGP'})"


@attrs.frozen
class Path:
    """One peer's path for any number of prefixes. ``next_hop`` is the NEXT_HOP attribute for
    classic IPv4 NLRI, the MP_REACH_NLRI next hop otherwise. ``stale``: kept across the peer's
    graceful restart (RFC 4724), awaiting refresh."""

    attributes: PathAttributes
    peer: PeerInfo
    next_hop: IPAddress | None = None
    link_local_next_hop: IPv6Address | None = None
    stale: bool = False


@attrs.frozen
class Route:
    prefix: Prefix
    path: Path

    @property
    def attributes(self) -> PathAttributes:
        return self.path.attributes

    @property
    def peer(self) -> PeerInfo:
        return self.path.peer

    @property
    def stale(self) -> bool:
        return self.path.stale


class RouteChange(NamedTuple):
    """A prefix's path from one peer went from ``old`` to ``new`` (None: absent)."""

    prefix: Prefix
    old: Path | None
    new: Path | None


_InternKey: TypeAlias = tuple[PathAttributes, IPAddress | None, IPv6Address | None, bool]


class _PerFamilyCounts:
    """Prefix counts of a table kept as one dict per address family."""

    _tables: Mapping[Family, Mapping[PrefixKey, object]]

    def count(self, family: Family) -> int:
        return len(self._tables.get(family, {}))

    def counts(self) -> dict[Family, int]:
        return {family: len(table) for family, table in self._tables.items() if table}

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())


class AdjRibIn(_PerFamilyCounts):
    """The routes one peer announced, before import policy (so a policy change can be
    re-applied without a route refresh)."""

    def __init__(self, peer: PeerInfo) -> None:
        self.peer = peer
        self._tables: dict[Family, dict[PrefixKey, Path]] = {}
        self._paths: weakref.WeakValueDictionary[_InternKey, Path] = weakref.WeakValueDictionary()

    def path_for(
        self,
        attributes: PathAttributes,
        next_hop: IPAddress | None,
        link_local_next_hop: IPv6Address | None = None,
        stale: bool = False,
    ) -> Path:
        """The shared `Path` for these attributes from this peer."""
        key = (attributes, next_hop, link_local_next_hop, stale)
        path = self._paths.get(key)
        if path is None:
            path = Path(attributes, self.peer, next_hop, link_local_next_hop, stale)
            self._paths[key] = path
        return path

    def apply(self, update: Update) -> list[RouteChange]:
        """Withdrawals (including RFC 7606 treat-as-withdraw), then announcements; only prefixes
        whose path changed are returned. An End-of-RIB changes nothing."""
        changes: list[RouteChange] = []
        self._withdraw(IPV4_UNICAST, update.withdrawn, changes)
        if update.mp_unreach is not None:
            self._withdraw(update.mp_unreach.family, update.mp_unreach.withdrawn, changes)
        reach = update.mp_reach
        if update.treat_as_withdraw:
            self._withdraw(IPV4_UNICAST, update.nlri, changes)
            if reach is not None:
                self._withdraw(reach.family, reach.nlri, changes)
            return changes
        if update.nlri:
            path = self.path_for(update.attributes, update.attributes.next_hop)
            self._announce(IPV4_UNICAST, update.nlri, path, changes)
        if reach is not None and reach.nlri:
            path = self.path_for(update.attributes, reach.next_hop, reach.link_local_next_hop)
            self._announce(reach.family, reach.nlri, path, changes)
        return changes

    def _withdraw(
        self, family: Family, prefixes: Iterable[Prefix], changes: list[RouteChange]
    ) -> None:
        table = self._tables.get(family)
        if table is None:
            return
        for prefix in prefixes:
            old = table.pop((int(prefix.network_address) << 8) | prefix.prefixlen, None)
            if old is not None:
                changes.append(RouteChange(prefix, old, None))

    def _announce(
        self, family: Family, prefixes: Iterable[Prefix], path: Path, changes: list[RouteChange]
    ) -> None:
        table = self._tables.get(family)
        if table is None:
            table = self._tables[family] = {}
        get = table.get
        for prefix in prefixes:
            key = (int(prefix.network_address) << 8) | prefix.prefixlen
            old = get(key)
            if old is not path:
                table[key] = path
                changes.append(RouteChange(prefix, old, path))

    # --- graceful restart (RFC 4724 §4.2) -----------------------------------------------------

    def mark_stale(self, family: Family) -> int:
        """Mark every route of ``family`` stale (the peer restarted); returns how many.

        The Loc-RIB keeps using them unchanged, so this reports no changes: a refreshed route
        comes back as the non-stale path the Loc-RIB already holds.
        """
        table = self._tables.get(family, {})
        twins: dict[int, Path] = {}
        for key, path in table.items():
            if path.stale:
                continue
            twin = twins.get(id(path))
            if twin is None:
                twin = self.path_for(path.attributes, path.next_hop, path.link_local_next_hop, True)
                twins[id(path)] = twin
            table[key] = twin
        return len(table)

    def sweep_stale(self, family: Family) -> Iterator[RouteChange]:
        """Remove the routes of ``family`` still stale (End-of-RIB or restart timer).

        The removal happens now; the returned iterator lists the withdrawals lazily (feed every
        one to the Loc-RIB)."""
        table = self._tables.get(family, {})
        gone = [(key, path) for key, path in table.items() if path.stale]
        for key, _path in gone:
            del table[key]
        return _withdrawals(family, gone)

    def stale_count(self, family: Family) -> int:
        return sum(1 for path in self._tables.get(family, {}).values() if path.stale)

    # --- whole table -------------------------------------------------------------------------

    def clear(self, family: Family | None = None) -> Iterator[RouteChange]:
        """Drop every route (of ``family``), e.g. when the session goes down. The removal
        happens now; the returned iterator lists the withdrawals lazily."""
        families = list(self._tables) if family is None else [family]
        detached = [(f, self._tables.pop(f, {})) for f in families]
        return (
            RouteChange(key_prefix(key, f), path, None)
            for f, table in detached
            for key, path in table.items()
        )

    def get(self, prefix: Prefix) -> Path | None:
        return self._tables.get(prefix_family(prefix), {}).get(prefix_key(prefix))

    def __contains__(self, prefix: object) -> bool:
        return isinstance(prefix, IPv4Network | IPv6Network) and self.get(prefix) is not None

    def routes(self, family: Family | None = None) -> Iterator[Route]:
        for f, table in list(self._tables.items()):
            if family is None or f == family:
                for key, path in table.items():
                    yield Route(key_prefix(key, f), path)

    def __iter__(self) -> Iterator[Route]:
        return self.routes()


def _withdrawals(family: Family, gone: list[tuple[PrefixKey, Path]]) -> Iterator[RouteChange]:
    for key, path in gone:
        yield RouteChange(key_prefix(key, family), path, None)


@attrs.frozen
class BestChange:
    """The Loc-RIB's choice for ``prefix`` changed: best path and/or multipath set."""

    prefix: Prefix
    old_best: Path | None
    new_best: Path | None
    multipath: tuple[Path, ...]  # the new ECMP set, best first; () when withdrawn
    old_multipath: tuple[Path, ...] = ()


def _same(a: tuple[Path, ...], b: tuple[Path, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def _same_route(a: Path, b: Path) -> bool:
    return (
        (a.attributes is b.attributes or a.attributes == b.attributes)
        and a.next_hop == b.next_hop
        and a.link_local_next_hop == b.link_local_next_hop
    )


_Held: TypeAlias = Path | tuple[Path, ...]


class LocRib(_PerFamilyCounts):
    """Candidate paths per prefix from every peer (after import policy) and the decision.

    Per prefix it keeps one `Path` or, with several peers, a tuple in arrival order (oldest
    first, which RFC 5004 needs). An update re-runs the decision over that prefix's candidates
    only.
    """

    def __init__(self, options: DecisionOptions = DEFAULT_OPTIONS) -> None:
        self.options = options
        self._tables: dict[Family, dict[PrefixKey, _Held]] = {}

    def update(self, prefix: Prefix, peer: PeerInfo, path: Path | None) -> BestChange | None:
        """Set (``path``) or remove (None) ``peer``'s candidate for ``prefix``; returns the
        change of best path / multipath set, or None when neither changed."""
        family = prefix_family(prefix)
        table = self._tables.get(family)
        if table is None:
            table = self._tables[family] = {}
        key = (int(prefix.network_address) << 8) | prefix.prefixlen
        held = table.get(key)
        if held is None:
            if path is None:
                return None
            table[key] = path
            return BestChange(prefix, None, path, (path,))
        if isinstance(held, Path):
            if held.peer is peer or held.peer.address == peer.address:  # the only candidate
                if path is held:
                    return None
                if path is None:
                    del table[key]
                    return BestChange(prefix, held, None, (), (held,))
                table[key] = path
                return BestChange(prefix, held, path, (path,), (held,))
            if path is None:
                return None
            candidates: tuple[Path, ...] = (held,)
        else:
            candidates = held
        index = _index_of(candidates, peer)
        if index is None:
            if path is None:
                return None
            fresh = (*candidates, path)
        else:
            current = candidates[index]
            if path is current:
                return None
            rest = candidates[:index] + candidates[index + 1 :]
            if path is None:
                fresh = rest
            elif _same_route(current, path):  # e.g. only the stale flag: keep its age
                fresh = (*candidates[:index], path, *candidates[index + 1 :])
            else:
                fresh = (*rest, path)
        old = select(candidates, self.options)
        if not fresh:
            del table[key]
        else:
            table[key] = fresh[0] if len(fresh) == 1 else fresh
        new = select(fresh, self.options)
        if new.best is old.best and _same(new.multipath, old.multipath):
            return None
        return BestChange(prefix, old.best, new.best, new.multipath, old.multipath)

    def apply(self, changes: Iterable[RouteChange], peer: PeerInfo) -> list[BestChange]:
        """`update` for each change (already through import policy)."""
        out: list[BestChange] = []
        for change in changes:
            best = self.update(change.prefix, peer, change.new)
            if best is not None:
                out.append(best)
        return out

    def _held(self, prefix: Prefix) -> tuple[Path, ...]:
        held = self._tables.get(prefix_family(prefix), {}).get(prefix_key(prefix))
        if held is None:
            return ()
        return (held,) if isinstance(held, Path) else held

    def candidates(self, prefix: Prefix) -> tuple[Path, ...]:
        """Every peer's path for ``prefix`` in arrival order."""
        return self._held(prefix)

    def selection(self, prefix: Prefix) -> Selection:
        return select(self._held(prefix), self.options)

    def best(self, prefix: Prefix) -> Path | None:
        return self.selection(prefix).best

    def explain(self, prefix: Prefix) -> list[tuple[Path, Reason | None]]:
        """Each candidate with the rule it lost by (None: the best), for ``show bgp routes``."""
        return explain(self._held(prefix), self.options)

    def selections(self, family: Family | None = None) -> Iterator[tuple[Prefix, Selection]]:
        """Every prefix with its best path and multipath set."""
        for f, table in list(self._tables.items()):
            if family is None or f == family:
                for key, held in table.items():
                    if isinstance(held, Path):
                        yield key_prefix(key, f), Selection(held, (held,))
                    else:
                        yield key_prefix(key, f), select(held, self.options)

    def routes(self, family: Family | None = None) -> Iterator[Route]:
        """The best route of every prefix."""
        for prefix, chosen in self.selections(family):
            if chosen.best is not None:
                yield Route(prefix, chosen.best)


def _index_of(candidates: tuple[Path, ...], peer: PeerInfo) -> int | None:
    for index, path in enumerate(candidates):
        if path.peer is peer or path.peer.address == peer.address:
            return index
    return None
