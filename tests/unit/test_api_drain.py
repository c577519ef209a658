"""Endpoint drain through the API: token needed, known endpoints only, and the intent takes
a drained endpoint out of new connections (as an endpoint probed down)."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

import httpx

from appliance.config import load_config
from appliance.controller import DRAINED, IntentController
from appliance.intent import INTENT
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore
from web.app import create_app
from web.auth import TokenAuth

EXAMPLES = Path(__file__).parents[2] / "examples"
AUTH = {"Authorization": "Bearer tok-ops"}
EP2 = ipaddress.ip_address("192.168.80.102")
PATH = "/api/v1/services/web/endpoints/192.168.80.102/8080/drain"


async def test_drain_and_undrain(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    shutil.copy(EXAMPLES / "scenario3-bgp-ecmp-node1.yaml", tmp_path / "node1.yaml")
    store = StateStore()
    store.publish(RUNNING_CONFIG, load_config(tmp_path / "node1.yaml"))
    controller = IntentController(store)
    app = create_app(store, TokenAuth({"tok-ops": "ops"}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://node"
    ) as http:
        assert (await http.post(PATH, json={"drain": True})).status_code == 401
        answer = await http.post(PATH, json={"drain": True}, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["drained"] is True
        assert store.get(DRAINED) == {("web", EP2, 8080)}
        await controller.recompute()
        intent = store.require(INTENT)
        web = next(s for s in intent.services if s.service.name == "web")
        echo = next(s for s in intent.services if s.service.name == "echo")
        assert web.endpoints_up == (True, False, True)  # ep2 takes no new connections
        assert echo.endpoints_up == (True, True, True) and web.advertised
        for path, body, status in (
            ("/api/v1/services/nope/endpoints/192.168.80.102/8080/drain", {}, 404),
            ("/api/v1/services/web/endpoints/192.168.80.109/8080/drain", {}, 404),
            ("/api/v1/services/web/endpoints/not-an-ip/8080/drain", {}, 400),
            (PATH, {"drain": "yes"}, 400),
        ):
            assert (await http.post(path, json=body, headers=AUTH)).status_code == status, path
        back = await http.post(PATH, json={"drain": False}, headers=AUTH)
        assert back.status_code == 200 and store.get(DRAINED) == frozenset()
        await controller.recompute()
        web = next(s for s in store.require(INTENT).services if s.service.name == "web")
        assert web.endpoints_up == (True, True, True)
