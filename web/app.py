"""The ASGI application: a JSON API under /api/v1 over the daemon's state store."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.keys import CONFIG_GENERATION, RUNNING_CONFIG
from appliance.state import StateStore

from .auth import TokenAuth
from .dashboard import dashboard_routes
from .jsonable import to_jsonable
from .metrics import metrics_routes
from .openapi import openapi_routes
from .routes_actions import action_routes
from .routes_bgp import bgp_routes
from .routes_config import config_routes
from .routes_dataplane import dataplane_routes
from .routes_events import event_routes
from .routes_ha import ha_routes
from .routes_sync import sync_routes


def json_response(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(to_jsonable(data), status_code=status)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(store: StateStore, auth: TokenAuth | None = None) -> Starlette:
    auth = auth or TokenAuth(None)

    async def node(request: Request) -> JSONResponse:
        cfg = store.get(RUNNING_CONFIG)
        if cfg is None:
            return error_response(503, "no running configuration")
        return json_response(
            {
                "name": cfg.node.name,
                "id": cfg.node.id,
                "router_id": cfg.node.router_id,
                "config_generation": store.get(CONFIG_GENERATION),
                "services": {
                    k.removeprefix("service/"): v for k, v in store.snapshot("service/").items()
                },
            }
        )

    routes = [
        Route("/api/v1/node", node),
        *bgp_routes(store, auth),
        *config_routes(store, auth),
        *ha_routes(store),
        *sync_routes(store),
        *dataplane_routes(store),
        *action_routes(store, auth),
        *event_routes(store),
        *dashboard_routes(),
        *metrics_routes(store),
        *openapi_routes(),
    ]
    return Starlette(routes=routes)
