"""The map programmer: makes the pinned maps equal to the dataplane intent, idempotently.

Identity is stable across reconciles and daemon restarts:

* a service (VIP, port, protocol) keeps its id; on start the ids are adopted from the pinned
  ``services`` map, and a new service gets the lowest free id;
* an endpoint (address, port) keeps its index in its service's endpoint set while it exists
  (adopted from the slot in use); a removed endpoint frees its index; a draining endpoint
  (``active`` False) keeps it, flagged `EP_DRAINING`, and is left out of the table.

Endpoint sets and tables are double-buffered. A change writes the slot the service does not
use, then flips ``Service.slot`` with one hash-map update (atomic for the program): the slot in
use is never written. A slot just left may still be read by a packet in flight on another CPU,
so it is rewritten only after a grace period (`GRACE_S`).

Everything here makes map system calls: the daemon runs it in a worker thread, where the
grace wait is a plain sleep.
"""

from __future__ import annotations

import ctypes
import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import attrs

from appliance.structlog import get_logger

from .identity import Identity
from .layout import (
    EP_ACTIVE,
    EP_DRAINING,
    MAX_ENDPOINTS,
    MAX_SERVICES,
    MAX_TABLE,
    PORT_FIRST,
    PORT_PARTITIONS,
    SLOTS,
    Endpoint,
    EndpointSet,
    Mode,
    Selection,
    SelectTable,
    Service,
    SvcKey,
    be16,
    be32,
    from_be16,
    from_be32,
)
from .maps import Maps, sum_stats
from .model import DpEndpoint, DpService, EndpointKey, IpProto, ServiceKey
from .selection import Candidate, build_table, maglev_size, maglev_table

__all__ = [
    "GRACE_S",
    "MAGLEV_TABLE_SIZE",
    "EndpointKey",
    "EndpointStatus",
    "Programmer",
    "ReconcileReport",
    "ServiceStatus",
    "assign_ids",
    "assign_indexes",
    "endpoint_set",
    "other_slot",
    "port_block",
    "select_table",
    "service_value",
    "slot_index",
]

log = get_logger("dataplane")

#: How long a slot just left stays untouched (far longer than any program run).
GRACE_S = 0.05

#: Every Maglev table has this size, whatever the endpoint count: the size is the modulus of
#: the flow hash, so a size following the endpoint count (`maglev_size(n)`) would move most
#: flows of the remaining endpoints whenever one comes or goes.
MAGLEV_TABLE_SIZE = maglev_size(MAX_ENDPOINTS)

_U32 = ctypes.c_uint32
T = TypeVar("T")
_SNAT_MODES = (Mode.ONEARM, Mode.FULLNAT)


# -- pure parts ---------------------------------------------------------------------------


def _assign(existing: Mapping[T, int], wanted: Iterable[T], limit: int) -> dict[T, int]:
    wanted = list(dict.fromkeys(wanted))
    out = {key: existing[key] for key in wanted if key in existing}
    used = set(out.values())
    free = (n for n in range(limit) if n not in used)
    for key in wanted:
        if key not in out:
            number = next(free, None)
            if number is None:
                break
            out[key] = number
    return out


def assign_ids(
    existing: Mapping[ServiceKey, int], wanted: Iterable[ServiceKey], limit: int = MAX_SERVICES
) -> dict[ServiceKey, int]:
    """Ids for ``wanted``: kept from ``existing``, else the lowest free id below ``limit``.
    Services that find no free id are left out."""
    return _assign(existing, wanted, limit)


def assign_indexes(
    existing: Mapping[EndpointKey, int],
    wanted: Iterable[EndpointKey],
    limit: int = MAX_ENDPOINTS,
) -> dict[EndpointKey, int]:
    """Stable endpoint indexes: kept from ``existing``; indexes of endpoints no longer wanted
    are free again; new endpoints take the lowest free ones."""
    return _assign(existing, wanted, limit)


def other_slot(slot: int) -> int:
    return (slot + 1) % SLOTS


def slot_index(svc_id: int, slot: int) -> int:
    """The ``endpoints`` / ``tables`` array key of a service's slot."""
    return svc_id * SLOTS + slot


def port_block(node_id: int) -> tuple[int, int]:
    """This node's full-NAT source ports (base, count): block (node_id - 1) % PORT_PARTITIONS
    of [PORT_FIRST, 65536)."""
    count = (65536 - PORT_FIRST) // PORT_PARTITIONS
    block = (node_id - 1) % PORT_PARTITIONS
    return PORT_FIRST + block * count, count


def endpoint_set(
    endpoints: Sequence[DpEndpoint], indexes: Mapping[EndpointKey, int]
) -> EndpointSet:
    """Endpoints at their stable indexes; ``count`` is the highest index in use + 1 (indexes
    below it with ``flags`` 0 are unused)."""
    out = EndpointSet()
    for ep in endpoints:
        index = indexes[(ep.address, ep.port)]
        slot = out.eps[index]
        slot.addr = be32(ep.address)
        slot.port = be16(ep.port)
        slot.weight = max(1, min(ep.weight, 0xFFFF))
        slot.flags = EP_ACTIVE if ep.active else EP_DRAINING
        out.count = max(out.count, index + 1)
    return out


def select_table(
    selection: Selection, endpoints: Sequence[DpEndpoint], indexes: Mapping[EndpointKey, int]
) -> SelectTable:
    """The selection table over the active endpoints (`bpf.selection.build_table`; Maglev's
    of `MAGLEV_TABLE_SIZE` entries)."""
    candidates = [
        Candidate(indexes[(ep.address, ep.port)], f"{ep.address}:{ep.port}", max(1, ep.weight))
        for ep in endpoints
        if ep.active
    ]
    if selection is Selection.MAGLEV and candidates:
        entries = maglev_table(candidates, MAGLEV_TABLE_SIZE)
    else:
        entries = build_table(selection, candidates)
    if len(entries) > MAX_TABLE:
        raise ValueError(f"selection table of {len(entries)} entries; at most {MAX_TABLE}")
    out = SelectTable()
    out.size = len(entries)
    for position, index in enumerate(entries):
        out.entries[position] = index
    return out


def service_value(service: DpService, svc_id: int, slot: int, node_id: int) -> Service:
    """The ``services`` map value of ``service``."""
    value = Service()
    value.id = svc_id
    value.mode = int(service.mode)
    value.selection = int(service.selection)
    value.slot = slot
    value.persist_timeout_s = service.persist_timeout_s
    if service.mode is Mode.FULLNAT and service.snat_addr is not None:
        value.snat_addr = be32(service.snat_addr)
    if service.mode in _SNAT_MODES:
        value.port_base, value.port_count = port_block(node_id)
    return value


def svc_key(key: ServiceKey) -> SvcKey:
    vip, port, proto = key
    return SvcKey(vip=be32(vip), port=be16(port), proto=int(proto))


def service_key_of(key: SvcKey) -> ServiceKey | None:
    try:
        proto = IpProto(key.proto)
    except ValueError:
        return None
    return (from_be32(key.vip), from_be16(key.port), proto)


def endpoint_indexes(value: EndpointSet) -> dict[EndpointKey, int]:
    """(address, port) -> index for the used entries of an endpoint set."""
    out: dict[EndpointKey, int] = {}
    for index in range(min(value.count, MAX_ENDPOINTS)):
        ep = value.eps[index]
        if ep.flags:
            out.setdefault((from_be32(ep.addr), from_be16(ep.port)), index)
    return out


# -- reports ------------------------------------------------------------------------------


@attrs.frozen
class ReconcileReport:
    created: tuple[ServiceKey, ...] = ()
    removed: tuple[ServiceKey, ...] = ()
    #: services whose endpoint set / table changed (a slot flip)
    flipped: tuple[ServiceKey, ...] = ()
    #: services whose record alone changed (mode, selection, addresses)
    updated: tuple[ServiceKey, ...] = ()
    #: map updates and deletes made; 0 when the maps already matched
    writes: int = 0
    errors: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.writes > 0


@attrs.frozen
class EndpointStatus:
    address: str
    port: int
    index: int
    weight: int
    state: str  # "active" / "draining"
    open_conns: int  # ep_active
    packets: int
    bytes: int
    conns: int
    drops: int


@attrs.frozen
class ServiceStatus:
    name: str
    vip: str
    port: int
    protocol: str
    id: int
    slot: int
    endpoints: tuple[EndpointStatus, ...]
    packets: int
    bytes: int
    conns: int
    drops: int


@attrs.define
class _Writes:
    count: int = 0


# -- the programmer -----------------------------------------------------------------------


class Programmer:
    """Programs one node's maps. ``clock``/``sleep`` drive the slot grace period."""

    def __init__(
        self,
        maps: Maps,
        node_id: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        grace_s: float = GRACE_S,
    ) -> None:
        self.maps = maps
        self.node_id = node_id
        self._clock = clock
        self._sleep = sleep
        self._grace = grace_s
        self._ids: dict[ServiceKey, int] = {}
        self._indexes: dict[int, dict[EndpointKey, int]] = {}
        self._names: dict[ServiceKey, str] = {}
        # a slot left by an earlier daemon may be in use for a moment yet: none is ready
        # before start + grace
        self._started = clock()
        self._left_at: dict[tuple[int, int], float] = {}
        self.adopt()

    @property
    def ids(self) -> dict[ServiceKey, int]:
        """Service ids in use, by (VIP, port, protocol)."""
        return dict(self._ids)

    def indexes(self, svc_id: int) -> dict[EndpointKey, int]:
        """Endpoint indexes of a service (as of the last reconcile or adoption)."""
        return dict(self._indexes.get(svc_id, {}))

    def identity(self) -> Identity:
        """The current ids and indexes, frozen (for translating connections between nodes)."""
        return Identity.build(self._ids, self._indexes)

    def adopt(self) -> None:
        """Read ids and endpoint indexes from the maps (the pinned state of a restart)."""
        self._ids.clear()
        self._indexes.clear()
        for raw_key, value in self.maps.services.items(MAX_SERVICES * 2):
            key = service_key_of(raw_key)
            if key is None or value.id >= MAX_SERVICES or value.id in self._indexes:
                continue
            self._ids[key] = int(value.id)
            current = self.maps.endpoints.lookup(_U32(slot_index(value.id, value.slot % SLOTS)))
            self._indexes[int(value.id)] = endpoint_indexes(current) if current else {}

    # reconcile ---------------------------------------------------------------------------

    def reconcile(self, services: Sequence[DpService]) -> ReconcileReport:
        """Make the maps equal to ``services``. Blocking (map calls, grace waits)."""
        writes = _Writes()
        errors: list[str] = []
        wanted: dict[ServiceKey, DpService] = {}
        for service in services:
            if len(service.endpoints) > MAX_ENDPOINTS:
                errors.append(
                    f"{service.name or service.key}: {len(service.endpoints)} endpoints, "
                    f"at most {MAX_ENDPOINTS}"
                )
                continue
            wanted.setdefault(service.key, service)
        removed = [key for key in self._ids if key not in wanted]
        for key in removed:
            self._remove(key, writes)
        ids = assign_ids(self._ids, wanted)
        for key in wanted:
            if key not in ids:
                errors.append(f"{wanted[key].name or key}: no free service id")
        outcomes: dict[str, list[ServiceKey]] = {
            "created": [],
            "flipped": [],
            "updated": [],
            "unchanged": [],
        }
        for key, svc_id in ids.items():
            service = wanted[key]
            self._names[key] = service.name
            outcomes[self._program(service, svc_id, writes)].append(key)
        self._ids = ids
        created, flipped, updated = outcomes["created"], outcomes["flipped"], outcomes["updated"]
        report = ReconcileReport(
            created=tuple(created),
            removed=tuple(removed),
            flipped=tuple(flipped),
            updated=tuple(updated),
            writes=writes.count,
            errors=tuple(errors),
        )
        if report.changed or errors:
            log.info(
                "dataplane_reconciled",
                created=len(created),
                removed=len(removed),
                flipped=len(flipped),
                updated=len(updated),
                writes=writes.count,
                errors=errors,
            )
        return report

    def _program(self, service: DpService, svc_id: int, writes: _Writes) -> str:
        key = svc_key(service.key)
        current = self.maps.services.lookup(key)
        previous = self._indexes.get(svc_id, {}) if current is not None else {}
        indexes = assign_indexes(previous, [(ep.address, ep.port) for ep in service.endpoints])
        wanted_set = endpoint_set(service.endpoints, indexes)
        wanted_table = select_table(service.selection, service.endpoints, indexes)
        if current is None:
            self._clear_counters(svc_id, writes, range(MAX_ENDPOINTS))
            self._write_slot(svc_id, 0, wanted_set, wanted_table, writes)
            self.maps.services.update(key, service_value(service, svc_id, 0, self.node_id))
            writes.count += 1
            self._indexes[svc_id] = indexes
            return "created"
        active = current.slot % SLOTS
        in_use_set = self.maps.endpoints.lookup(_U32(slot_index(svc_id, active)))
        in_use_table = self.maps.tables.lookup(_U32(slot_index(svc_id, active)))
        same = (
            in_use_set is not None
            and in_use_table is not None
            and bytes(in_use_set) == bytes(wanted_set)
            and bytes(in_use_table) == bytes(wanted_table)
        )
        slot = active
        if not same:
            slot = other_slot(active)
            fresh = [i for k, i in indexes.items() if previous.get(k) != i]
            self._clear_counters(svc_id, writes, fresh, open_conns=False, service=False)
            self._write_slot(svc_id, slot, wanted_set, wanted_table, writes)
        value = service_value(service, svc_id, slot, self.node_id)
        self._indexes[svc_id] = indexes
        if bytes(value) == bytes(current):
            return "unchanged"
        self.maps.services.update(key, value)  # the flip: one atomic update
        writes.count += 1
        if slot != active:
            self._left_at[(svc_id, active)] = self._clock()
            return "flipped"
        return "updated"

    def _wait_ready(self, svc_id: int, slot: int) -> None:
        ready = max(self._started, self._left_at.get((svc_id, slot), self._started)) + self._grace
        remaining = ready - self._clock()
        if remaining > 0:
            self._sleep(min(remaining, self._grace))

    def _write_slot(
        self, svc_id: int, slot: int, eps: EndpointSet, table: SelectTable, writes: _Writes
    ) -> None:
        self._wait_ready(svc_id, slot)
        index = _U32(slot_index(svc_id, slot))
        self.maps.endpoints.update(index, eps)
        self.maps.tables.update(index, table)
        writes.count += 2

    def _clear_counters(
        self,
        svc_id: int,
        writes: _Writes,
        indexes: Iterable[int],
        *,
        open_conns: bool = False,
        service: bool = True,
    ) -> None:
        """Zero statistics (and ``open_conns``: ep_active) of a service or some endpoints."""
        for index in indexes:
            key = _U32(svc_id * MAX_ENDPOINTS + index)
            self.maps.ep_stats.zero(key)
            writes.count += 1
            if open_conns:
                self.maps.ep_active.update(key, ctypes.c_int64(0))
                writes.count += 1
        if service:
            self.maps.svc_stats.zero(_U32(svc_id))
            self.maps.rr_state.update(_U32(svc_id), _U32(0))
            writes.count += 2

    def _remove(self, key: ServiceKey, writes: _Writes) -> None:
        svc_id = self._ids[key]
        self.maps.services.delete(svc_key(key))
        writes.count += 1
        now = self._clock()
        for slot in range(SLOTS):
            self._left_at[(svc_id, slot)] = now
            index = _U32(slot_index(svc_id, slot))
            self.maps.endpoints.update(index, EndpointSet())
            self.maps.tables.update(index, SelectTable())
            writes.count += 2
        self._clear_counters(svc_id, writes, range(MAX_ENDPOINTS), open_conns=True)
        stale = [k for k in self.maps.persist if k.svc_id == svc_id]
        for persist_key in stale:
            self.maps.persist.delete(persist_key)
            writes.count += 1
        self._indexes.pop(svc_id, None)
        self._names.pop(key, None)

    # ifaddrs -----------------------------------------------------------------------------

    def reconcile_ifaddrs(self, addresses: Mapping[int, ipaddress.IPv4Address]) -> int:
        """Make ``ifaddrs`` equal to ifindex -> address (one-arm SNAT sources); returns the
        number of writes."""
        count = 0
        present = {int(k.value): int(v.value) for k, v in self.maps.ifaddrs.items(1024)}
        for ifindex in present.keys() - addresses.keys():
            self.maps.ifaddrs.delete(_U32(ifindex))
            count += 1
        for ifindex, address in addresses.items():
            if present.get(ifindex) != be32(address):
                self.maps.ifaddrs.update(_U32(ifindex), _U32(be32(address)))
                count += 1
        return count

    # status ------------------------------------------------------------------------------

    def status(self) -> tuple[ServiceStatus, ...]:
        """Every programmed service with its slot, endpoints and counters (summed over CPUs)."""
        out: list[ServiceStatus] = []
        for key, svc_id in sorted(self._ids.items(), key=lambda kv: kv[1]):
            value = self.maps.services.lookup(svc_key(key))
            if value is None:
                continue
            slot = value.slot % SLOTS
            eps = self.maps.endpoints.lookup(_U32(slot_index(svc_id, slot))) or EndpointSet()
            endpoints: list[EndpointStatus] = []
            for index in range(min(eps.count, MAX_ENDPOINTS)):
                ep: Endpoint = eps.eps[index]
                if not ep.flags:
                    continue
                counter = _U32(svc_id * MAX_ENDPOINTS + index)
                stats = sum_stats(self.maps.ep_stats.lookup(counter))
                open_conns = self.maps.ep_active.lookup(counter)
                endpoints.append(
                    EndpointStatus(
                        address=str(from_be32(ep.addr)),
                        port=from_be16(ep.port),
                        index=index,
                        weight=int(ep.weight),
                        state="active" if ep.flags & EP_ACTIVE else "draining",
                        open_conns=int(open_conns.value) if open_conns is not None else 0,
                        packets=int(stats.packets),
                        bytes=int(stats.bytes),
                        conns=int(stats.conns),
                        drops=int(stats.drops),
                    )
                )
            total = sum_stats(self.maps.svc_stats.lookup(_U32(svc_id)))
            vip, port, proto = key
            out.append(
                ServiceStatus(
                    name=self._names.get(key, ""),
                    vip=str(vip),
                    port=port,
                    protocol=proto.name.lower(),
                    id=svc_id,
                    slot=slot,
                    endpoints=tuple(endpoints),
                    packets=int(total.packets),
                    bytes=int(total.bytes),
                    conns=int(total.conns),
                    drops=int(total.drops),
                )
            )
        return tuple(out)
