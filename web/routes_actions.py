"""Operator actions that are not configuration: draining an endpoint (no new connections,
open ones continue), HA graceful handoff and runtime priority. Each needs the bearer token
and is logged with the token's name (`TokenAuth.record`, kept in the event journal)."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.controller import DRAINED
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

    return [
        Route(
            "/api/v1/services/{service}/endpoints/{address}/{port:int}/drain",
            drain,
            methods=["POST"],
        )
    ]
