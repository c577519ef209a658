"""/api/v1/sync: conntrack sync's peers (state, lag, queue, counters) and its own counters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.state import StateStore
from appliance.sync.status import SYNC_STATUS

from .jsonable import to_jsonable

NOT_RUNNING = "conntrack sync is not running on this node"


def sync_routes(store: StateStore) -> list[Route]:
    async def sync(request: Request) -> JSONResponse:
        status = store.get(SYNC_STATUS)
        if status is None:
            return JSONResponse({"error": NOT_RUNNING}, 404)
        return JSONResponse(to_jsonable(status))

    return [Route("/api/v1/sync", sync)]
