"""/api/v1/ha: HA groups with their state, role and priority."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.ha.status import GroupStatus
from appliance.state import StateStore

from .jsonable import to_jsonable


def ha_routes(store: StateStore) -> list[Route]:
    async def groups(request: Request) -> JSONResponse:
        found = [v for v in store.snapshot("ha/").values() if isinstance(v, GroupStatus)]
        return JSONResponse({"groups": to_jsonable(sorted(found, key=lambda g: g.id))})

    return [Route("/api/v1/ha", groups)]
