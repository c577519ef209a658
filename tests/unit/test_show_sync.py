"""`triolb show sync` and GET /api/v1/sync: the document and its text."""

from __future__ import annotations

import httpx

from appliance.cli_remote import sync_text
from appliance.state import StateStore
from appliance.sync.status import SYNC_STATUS, SyncStatus
from web.app import create_app
from web.jsonable import to_jsonable

from . import sync_samples

PEER, STATUS = sync_samples.PEER, sync_samples.STATUS


def test_sync_text() -> None:
    lines = sync_text(to_jsonable(STATUS)).splitlines()
    assert lines[0] == (
        "node 1 on 192.168.80.252:7946: resynced; captured 200, applied 3, deleted 1, "
        "kept local 0; skipped unknown-service=5"
    )
    assert lines[2].split()[:4] == ["peer", "node", "state", "lag"]
    assert lines[3].split() == [
        "192.168.80.253:7946", "2", "up", "12.5", "ms", "4", "2", "200/3", "1", "1/1", "0",
        "0.2", "s", "bad-mac=2",
    ]  # fmt: skip
    joining = to_jsonable(SyncStatus(node_id=1, listen="[::1]:7946", resynced=False, peers=()))
    assert sync_text(joining).splitlines() == [
        "node 1 on [::1]:7946: joining (resync pending); captured 0, applied 0, deleted 0, "
        "kept local 0",
        "no peers configured",
    ]


async def test_the_api_answers_404_until_sync_runs() -> None:
    store = StateStore()
    transport = httpx.ASGITransport(app=create_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        response = await http.get("/api/v1/sync")
        assert response.status_code == 404
        assert response.json() == {"error": "conntrack sync is not running on this node"}
        store.publish(SYNC_STATUS, STATUS)
        body = (await http.get("/api/v1/sync")).json()
    assert body["peers"][0]["peer"] == ["192.168.80.253", 7946]
    assert body["peers"][0]["rejected"] == {"bad-mac": 2}
    assert (body["resynced"], body["captured"], body["skipped"]) == (
        True,
        200,
        {"unknown-service": 5},
    )
