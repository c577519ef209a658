"""HA operator actions through the API: token needed, values checked, unknown groups 404,
each done action logged with the token's name (and so kept in the event journal)."""

from __future__ import annotations

import httpx

from appliance.ha.status import HA_CONTROL
from appliance.journal import close_journal, open_journal
from appliance.state import StateStore
from web.app import create_app
from web.auth import TokenAuth

AUTH = {"Authorization": "Bearer tok-ops"}


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int | None]] = []

    def set_priority(self, group_id: int, priority: int | None) -> bool:
        self.calls.append(("priority", group_id, priority))
        return group_id == 1

    def hand_off(self, group_id: int) -> bool:
        self.calls.append(("handoff", group_id, None))
        return group_id == 1


async def test_ha_actions() -> None:
    store = StateStore()
    control = FakeControl()
    journal = open_journal()
    app = create_app(store, TokenAuth({"tok-ops": "ops"}))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://node"
        ) as http:
            assert (await http.post("/api/v1/ha/1/handoff", headers=AUTH)).status_code == 404
            store.publish(HA_CONTROL, control)  # HA running from now on
            assert (await http.post("/api/v1/ha/1/handoff")).status_code == 401
            done = await http.post("/api/v1/ha/1/handoff", headers=AUTH)
            assert done.status_code == 200 and done.json()["action"] == "handoff"
            for body, status in (
                ({"priority": 200}, 200),
                ({"priority": None}, 200),
                ({"priority": 0}, 400),
                ({"priority": 255}, 400),
                ({"priority": True}, 400),
                ({"priority": "high"}, 400),
            ):
                answer = await http.post("/api/v1/ha/1/priority", json=body, headers=AUTH)
                assert answer.status_code == status, body
            assert (await http.post("/api/v1/ha/7/handoff", headers=AUTH)).status_code == 404
            assert (await http.post("/api/v1/ha/1/explode", headers=AUTH)).status_code == 404
        assert control.calls == [
            ("handoff", 1, None),
            ("priority", 1, 200),
            ("priority", 1, None),
            ("handoff", 7, None),
        ]
        actions = [e.fields for e in journal.since() if e.event == "api_action"]
        assert actions == [
            {"by": "ops", "action": "ha handoff", "target": "group 1"},
            {"by": "ops", "action": "ha priority", "target": "group 1 priority 200"},
            {"by": "ops", "action": "ha priority", "target": "group 1 priority None"},
        ]
    finally:
        close_journal(journal)
