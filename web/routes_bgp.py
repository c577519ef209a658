"""/api/v1/bgp: neighbours and routes (best, received, advertised), paged."""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.state import StateStore
from bgp.codec.attr_community import format_community
from bgp.codec.attributes import PathAttributes
from bgp.rib import Route as RibRoute
from bgp.status import BGP_CONTROL, BGP_RIB_VIEW, NeighborStatus

from .auth import TokenAuth
from .jsonable import json_body, to_jsonable

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
ROUTE_VIEWS = ("best", "received", "advertised")


def attributes_json(attributes: PathAttributes) -> dict[str, Any]:
    return {
        "origin": attributes.origin.name.lower() if attributes.origin is not None else None,
        "as_path": str(attributes.as_path) if attributes.as_path is not None else "",
        "med": attributes.med,
        "local_pref": attributes.local_pref,
        "communities": [format_community(c) for c in attributes.communities],
        "large_communities": [str(c) for c in attributes.large_communities],
    }


def rib_route_json(route: RibRoute) -> dict[str, Any]:
    return {
        "prefix": str(route.prefix),
        "peer": str(route.peer.address),
        "next_hop": str(route.path.next_hop) if route.path.next_hop is not None else None,
        "stale": route.stale,
        **attributes_json(route.attributes),
    }


def neighbor_json(status: NeighborStatus, now: float) -> dict[str, Any]:
    doc: dict[str, Any] = to_jsonable(status)
    doc["uptime_s"] = (
        round(now - status.established_at, 1) if status.established_at is not None else None
    )
    return doc


def page(items: Iterable[dict[str, Any]], offset: int, limit: int) -> list[dict[str, Any]]:
    return list(itertools.islice(items, offset, offset + limit))


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer 0-{high}")
    return int(raw)


def _peer_address(request: Request) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(request.path_params["address"])


def bgp_routes(store: StateStore, auth: TokenAuth) -> list[Route]:
    async def neighbors(request: Request) -> JSONResponse:
        now = time.time()
        found = [
            neighbor_json(v, now)
            for v in store.snapshot("bgp/neighbor/").values()
            if isinstance(v, NeighborStatus)
        ]
        return JSONResponse({"neighbors": found})

    async def routes(request: Request) -> JSONResponse:
        view = request.query_params.get("view", "best")
        if view not in ROUTE_VIEWS:
            return JSONResponse({"error": f"view must be one of {', '.join(ROUTE_VIEWS)}"}, 400)
        try:
            limit = _int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
            offset = _int_param(request, "offset", 0, 1 << 31)
            raw_peer = request.query_params.get("peer")
            peer = ipaddress.ip_address(raw_peer) if raw_peer else None
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        rib = store.get(BGP_RIB_VIEW)
        if rib is None:
            return JSONResponse({"error": "BGP is not running on this node"}, 404)
        items: Iterator[dict[str, Any]]
        if view == "advertised":
            items = (
                {"prefix": str(prefix), "peer": str(address), **attributes_json(attributes)}
                for address, prefix, attributes in rib.advertised(peer)
            )
        elif view == "received":
            items = (rib_route_json(r) for r in rib.received(peer))
        else:
            items = (
                rib_route_json(r) for r in rib.best() if peer is None or r.peer.address == peer
            )
        return JSONResponse({"view": view, "offset": offset, "routes": page(items, offset, limit)})

    async def action(request: Request) -> JSONResponse:
        refusal = auth.refusal(request)
        if refusal is not None:
            return refusal
        verb = request.path_params["action"]
        if verb not in ("shutdown", "enable", "refresh"):
            return JSONResponse({"error": f"no BGP action {verb!r}"}, 404)
        try:
            address = _peer_address(request)
            body = await json_body(request)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        communication = body.get("communication")
        if communication is not None and (
            not isinstance(communication, str) or len(communication.encode()) > 255
        ):
            return JSONResponse({"error": "communication: text of at most 255 octets"}, 400)
        control = store.get(BGP_CONTROL)
        if control is None:
            return JSONResponse({"error": "BGP is not running on this node"}, 404)
        if verb == "shutdown":
            done = control.shutdown_peer(address, communication)
        elif verb == "enable":
            done = control.enable_peer(address)
        else:
            done = control.refresh_peer(address)
        if not done:
            status = 404 if address not in _configured(store) else 409
            return JSONResponse({"error": f"cannot {verb} {address} now"}, status)
        auth.record(request, f"bgp {verb}", str(address))
        return JSONResponse({"ok": True, "neighbor": str(address), "action": verb})

    return [
        Route("/api/v1/bgp/neighbors", neighbors),
        Route("/api/v1/bgp/routes", routes),
        Route(
            "/api/v1/bgp/neighbors/{address}/{action:str}",
            action,
            methods=["POST"],
        ),
    ]


def _configured(store: StateStore) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return {
        v.address for v in store.snapshot("bgp/neighbor/").values() if isinstance(v, NeighborStatus)
    }
