"""/api/v1/services and /api/v1/conntrack: the dataplane's services and its connections.

``services`` joins four state values, none of which touches a map: the dataplane status
(ids, slots, endpoints, counters; refreshed by the dataplane service every few seconds), the
running configuration (mode, selection), the probe status (health, latency, last error) and
the intent (each service advertised or withdrawn and why, the role governing its VIP, pool
conflicts).

``conntrack`` reads the connection table through the reader the dataplane service publishes
(`appliance.dataplane_access`): blocking map calls, made in a worker thread, at most
`MAX_LIMIT` connections per page.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import attrs
import trio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.config import Config, IPAddress
from appliance.controller import DRAINED, ENDPOINT_HEALTH
from appliance.dataplane import DATAPLANE_STATUS, DataplaneStatus
from appliance.dataplane_access import DATAPLANE_CONNTRACK, ConntrackReader, DataplaneStopped
from appliance.health.status import HEALTH_STATUS
from appliance.health.status import EndpointStatus as ProbeStatus
from appliance.intent import INTENT, EndpointHealth, NodeIntent, ServiceIntent
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore
from bpf.conntrack import CtFilter, CtRecord
from bpf.layout import CT_DSR, CT_MAX, CtState
from bpf.programmer import EndpointStatus as DpEndpointStatus
from bpf.programmer import ServiceStatus

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
MAX_OFFSET = CT_MAX
CONNTRACK_PARAMS = (
    "count",
    "limit",
    "offset",
    "service",
    "client",
    "vip",
    "endpoint",
    "state",
    "remote",
)
STATE_NAMES = tuple(s.name.lower() for s in CtState)
_PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")
NOT_RUNNING = "the dataplane is not running on this node"
Drained = frozenset[tuple[str, IPAddress, int]]


# -- services ---------------------------------------------------------------------------------


def _health_json(
    service: str,
    endpoint: DpEndpointStatus,
    probes: Mapping[tuple[str, str, int], ProbeStatus],
    health: EndpointHealth,
) -> dict[str, Any]:
    probe = probes.get((service, endpoint.address, endpoint.port))
    if probe is not None:
        return {
            "health": probe.health.value,
            "probe": probe.probe.value,
            "latency_ms": probe.latency_ms,
            "last_error": probe.last_error,
            "checked_at": probe.checked_at,
        }
    up = health.get((service, ipaddress.ip_address(endpoint.address), endpoint.port))
    return {
        "health": "unknown" if up is None else "up" if up else "down",
        "probe": None,
        "latency_ms": None,
        "last_error": None,
        "checked_at": None,
    }


def _endpoint_json(
    service: str,
    endpoint: DpEndpointStatus,
    probes: Mapping[tuple[str, str, int], ProbeStatus],
    health: EndpointHealth,
    drained: Drained,
) -> dict[str, Any]:
    key = (service, ipaddress.ip_address(endpoint.address), endpoint.port)
    return {
        "address": endpoint.address,
        "port": endpoint.port,
        "index": endpoint.index,
        "weight": endpoint.weight,
        "state": endpoint.state,
        "drained": key in drained,
        **_health_json(service, endpoint, probes, health),
        "open_connections": endpoint.open_conns,
        "packets": endpoint.packets,
        "bytes": endpoint.bytes,
        "connections": endpoint.conns,
        "drops": endpoint.drops,
    }


def _route_json(intended: ServiceIntent | None) -> dict[str, Any]:
    if intended is None:
        return {"route": None, "withdrawn_reason": None, "role": None}
    return {
        "route": "advertised" if intended.advertised else "withdrawn",
        "withdrawn_reason": intended.withdrawn_reason,
        "role": intended.role.value,
    }


def _service_json(
    service: ServiceStatus,
    cfg: Config | None,
    probes: Mapping[tuple[str, str, int], ProbeStatus],
    health: EndpointHealth,
    intended: ServiceIntent | None,
    drained: Drained,
) -> dict[str, Any]:
    configured = next((s for s in cfg.services if s.name == service.name), None) if cfg else None
    return {
        "name": service.name,
        "vip": service.vip,
        "port": service.port,
        "protocol": service.protocol,
        "mode": configured.mode.value if configured is not None else None,
        "selection": configured.selection.value if configured is not None else None,
        "id": service.id,
        "slot": service.slot,
        "packets": service.packets,
        "bytes": service.bytes,
        "connections": service.conns,
        "drops": service.drops,
        **_route_json(intended),
        "endpoints": [
            _endpoint_json(service.name, e, probes, health, drained) for e in service.endpoints
        ],
    }


def services_json(
    status: DataplaneStatus,
    cfg: Config | None,
    probes: tuple[ProbeStatus, ...] = (),
    health: EndpointHealth | None = None,
    intent: NodeIntent | None = None,
    drained: Drained = frozenset(),
) -> dict[str, Any]:
    """The ``/api/v1/services`` document (pure). ``unallocated``: services whose pool gave
    them no address (so they are neither programmed nor advertised)."""
    by_key = {(p.service, str(p.address), p.port): p for p in probes}
    intended = {s.name: s for s in intent.services} if intent is not None else {}
    return {
        "node": status.node,
        "adopted": status.adopted,
        "layout_reset": status.layout_reset,
        "attached": [{"interface": name, "hooks": list(hooks)} for name, hooks in status.attached],
        "connections": status.connections,
        "events": status.events,
        "events_dropped": status.events_dropped,
        "skipped": list(status.skipped),
        "errors": list(status.errors),
        "services": [
            _service_json(s, cfg, by_key, health or {}, intended.get(s.name), drained)
            for s in status.services
        ],
        "unallocated": [s.name for s in intended.values() if s.vip is None],
        "pool_conflicts": list(intent.pool_conflicts) if intent is not None else [],
    }


# -- conntrack --------------------------------------------------------------------------------


@attrs.frozen
class ConntrackQuery:
    count: bool
    limit: int
    offset: int
    filter: CtFilter

    @property
    def filtered(self) -> bool:
        return self.filter != CtFilter()


def _int(params: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer 0-{high}, not {raw!r}")
    return int(raw)


def _bool(params: Mapping[str, str], name: str) -> bool | None:
    raw = params.get(name)
    if raw is None:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false (1/0, yes/no), not {raw!r}")


def _ipv4(params: Mapping[str, str], name: str) -> ipaddress.IPv4Address | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        raise ValueError(f"{name} must be an IP address, not {raw!r}") from None
    if not isinstance(address, ipaddress.IPv4Address):
        raise ValueError(f"{name}: the dataplane is IPv4-only, {raw} cannot match")
    return address


def _state(params: Mapping[str, str]) -> CtState | None:
    raw = params.get("state")
    if raw is None:
        return None
    name = raw.strip().lower().replace("-", "_")
    if name not in STATE_NAMES:
        raise ValueError(f"state must be one of {', '.join(STATE_NAMES)}, not {raw!r}")
    return CtState[name.upper()]


def parse_conntrack_query(
    params: Mapping[str, str], service_ids: Mapping[str, int]
) -> ConntrackQuery:
    """Validate ``/api/v1/conntrack``'s query; ValueError with the reason. ``service_ids``: the
    programmed services' ids by name (the ``service`` filter names a service)."""
    unknown = sorted(set(params) - set(CONNTRACK_PARAMS))
    if unknown:
        raise ValueError(
            f"unknown parameter {', '.join(unknown)} (known: {', '.join(CONNTRACK_PARAMS)})"
        )
    svc_id = None
    service = params.get("service")
    if service is not None:
        if service not in service_ids:
            known = ", ".join(sorted(service_ids)) or "none"
            raise ValueError(f"service {service!r} is not in the dataplane (services: {known})")
        svc_id = service_ids[service]
    return ConntrackQuery(
        count=bool(_bool(params, "count")),
        limit=_int(params, "limit", DEFAULT_LIMIT, MAX_LIMIT),
        offset=_int(params, "offset", 0, MAX_OFFSET),
        filter=CtFilter(
            svc_id=svc_id,
            client=_ipv4(params, "client"),
            vip=_ipv4(params, "vip"),
            endpoint=_ipv4(params, "endpoint"),
            state=_state(params),
            remote=_bool(params, "remote"),
        ),
    )


def state_name(state: CtState | int) -> str:
    return state.name.lower() if isinstance(state, CtState) else f"unknown({state})"


def connection_json(record: CtRecord, names: Mapping[int, str]) -> dict[str, Any]:
    key, nat = record.key, record.nat
    return {
        "protocol": _PROTOCOLS.get(key.proto, str(key.proto)),
        "client": str(key.src),
        "client_port": key.sport,
        "vip": str(key.dst),
        "vip_port": key.dport,
        "endpoint": str(nat.dst),
        "endpoint_port": nat.dport,
        "source": str(nat.src),
        "source_port": nat.sport,
        "service": names.get(record.svc_id),
        "service_id": record.svc_id,
        "endpoint_index": record.ep_index,
        "state": state_name(record.state),
        "age_s": round(record.age_s, 3),
        "idle_s": round(record.idle_s, 3),
        "packets": record.packets,
        "bytes": record.bytes,
        "remote": record.remote,
        "dsr": bool(record.flags & CT_DSR),
    }


def read_conntrack(
    reader: ConntrackReader, query: ConntrackQuery, names: Mapping[int, str]
) -> dict[str, Any]:
    """Blocking (map reads): the ``/api/v1/conntrack`` document for ``query``."""
    if query.count and not query.filtered:
        return {"count": reader.count()}
    # one read of every match: the total and the page come from the same table state
    matched = reader.entries(limit=CT_MAX, offset=0, filter=query.filter)
    if query.count:
        return {"count": len(matched)}
    window = matched[query.offset : query.offset + query.limit]
    return {
        "total": len(matched),
        "offset": query.offset,
        "limit": query.limit,
        "connections": [connection_json(r, names) for r in window],
    }


def dataplane_routes(store: StateStore) -> list[Route]:
    async def services(request: Request) -> JSONResponse:
        status = store.get(DATAPLANE_STATUS)
        if status is None:
            return JSONResponse({"error": NOT_RUNNING}, 404)
        doc = services_json(
            status,
            store.get(RUNNING_CONFIG),
            store.get(HEALTH_STATUS) or (),
            store.get(ENDPOINT_HEALTH),
            store.get(INTENT),
            store.get(DRAINED) or frozenset(),
        )
        return JSONResponse(doc)

    async def conntrack(request: Request) -> JSONResponse:
        status = store.get(DATAPLANE_STATUS)
        programmed = status.services if status is not None else ()
        try:
            query = parse_conntrack_query(
                request.query_params, {s.name: s.id for s in programmed if s.name}
            )
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        reader = store.get(DATAPLANE_CONNTRACK)
        if reader is None:
            return JSONResponse({"error": NOT_RUNNING}, 404)
        names = {s.id: s.name for s in programmed}
        try:
            doc = await trio.to_thread.run_sync(read_conntrack, reader, query, names)
        except DataplaneStopped:
            return JSONResponse({"error": NOT_RUNNING}, 404)
        except OSError as exc:
            return JSONResponse({"error": f"reading the connection table: {exc}"}, 503)
        return JSONResponse(doc)

    return [Route("/api/v1/services", services), Route("/api/v1/conntrack", conntrack)]
