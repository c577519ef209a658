"""Operator actions that are not configuration: draining an endpoint (no new connections,
open ones continue), HA graceful handoff and runtime priority. Each needs the bearer token
and is logged with the token's name (`TokenAuth.record`, kept in the event journal)."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.controller import DRAINED
from appliance.ha.instance import MIN_PRIORITY
from appliance.ha.status import HA_CONTROL
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore

from .auth import TokenAuth
from .jsonable import json_body

__all__ = ["action_routes"]


def action_routes(store: StateStore, auth: TokenAuth) -> list[Route]:
    async def drain(request: Request) -> JSONResponse:
        """POST /api/v1/services/{service}/endpoints/{address}/{port}/drain
        {"drain": true|false}: drain an endpoint, or take it back."""
        refusal = auth.refusal(request)
        if refusal is not None:
            return refusal
        name = request.path_params["service"]
        try:
            address = ipaddress.ip_address(request.path_params["address"])
            port = int(request.path_params["port"])
            body = await json_body(request)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        wanted = body.get("drain", True)
        if not isinstance(wanted, bool):
            return JSONResponse({"error": "drain: true or false"}, 400)
        cfg = store.get(RUNNING_CONFIG)
        service = next((s for s in cfg.services if s.name == name), None) if cfg else None
        if service is None:
            return JSONResponse({"error": f"no service {name!r}"}, 404)
        if not any(e.address == address and e.port == port for e in service.endpoints):
            return JSONResponse(
                {"error": f"service {name!r} has no endpoint {address}:{port}"}, 404
            )
        key = (name, address, port)
        current = store.get(DRAINED) or frozenset()
        store.publish(DRAINED, current | {key} if wanted else current - {key})
        auth.record(request, "drain" if wanted else "undrain", f"{name} {address}:{port}")
        return JSONResponse(
            {"ok": True, "service": name, "endpoint": f"{address}:{port}", "drained": wanted}
        )

    async def ha(request: Request) -> JSONResponse:
        """POST /api/v1/ha/{group}/handoff, and /priority {"priority": 1-254 | null}."""
        refusal = auth.refusal(request)
        if refusal is not None:
            return refusal
        group, verb = request.path_params["group"], request.path_params["action"]
        if verb not in ("handoff", "priority"):
            return JSONResponse({"error": f"no HA action {verb!r}"}, 404)
        try:
            body = await json_body(request)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        priority = body.get("priority") if verb == "priority" else MIN_PRIORITY
        if verb == "priority" and not (
            priority is None
            or (
                isinstance(priority, int)
                and not isinstance(priority, bool)
                and 1 <= priority <= 254
            )
        ):
            return JSONResponse({"error": "priority: 1-254, or null for the configured one"}, 400)
        control = store.get(HA_CONTROL)
        if control is None:
            return JSONResponse({"error": "HA is not running on this node"}, 404)
        done = (
            control.hand_off(group) if verb == "handoff" else control.set_priority(group, priority)
        )
        if not done:
            return JSONResponse({"error": f"no HA group {group}"}, 404)
        target = f"group {group}" + ("" if verb == "handoff" else f" priority {priority}")
        auth.record(request, f"ha {verb}", target)
        return JSONResponse({"ok": True, "group": group, "action": verb, "priority": priority})

    return [
        Route(
            "/api/v1/services/{service}/endpoints/{address}/{port:int}/drain",
            drain,
            methods=["POST"],
        ),
        Route("/api/v1/ha/{group:int}/{action:str}", ha, methods=["POST"]),
    ]
