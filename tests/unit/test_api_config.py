"""The configuration API (`web/routes_config.py`) in-process: reads open, changes need the
token, every operation answers the documented fields, bad calls change nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from appliance.committer import CONFIG_CONTROL, Committer
from appliance.config import parse_config
from appliance.state import StateStore
from web.app import create_app
from web.auth import TokenAuth

EXAMPLES = Path(__file__).parents[2] / "examples"
TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    shutil.copy(EXAMPLES / "scenario4-ctsync-node1.yaml", tmp_path / "node1.yaml")
    return tmp_path


def _candidate(config_dir: Path, weight: int) -> dict[str, object]:
    text = (config_dir / "node1.yaml").read_text()
    text = text.replace(
        "- {address: 192.168.80.101", f"- {{weight: {weight}, address: 192.168.80.101", 1
    )
    return {"config": text, "base_dir": str(config_dir)}


async def test_config_operations_over_the_api(
    config_dir: Path, autojump_clock: trio.testing.MockClock
) -> None:
    store = StateStore()
    initial = parse_config((config_dir / "node1.yaml").read_text(), "node1.yaml", config_dir)
    committer = Committer(store, initial, followers=list, base_dir=config_dir)
    store.publish(CONFIG_CONTROL, committer)
    transport = httpx.ASGITransport(app=create_app(store, TokenAuth(TOKEN)))
    async with (
        trio.open_nursery() as nursery,
        httpx.AsyncClient(transport=transport, base_url="http://node") as http,
    ):
        await nursery.start(committer.run)
        running = (await http.get("/api/v1/config")).json()
        assert running["generation"] == 1 and "name: node1" in running["config"]
        assert running["pending_confirm"] is None

        check = (await http.post("/api/v1/config/check", json=_candidate(config_dir, 4))).json()
        assert check["valid"] and "+        weight: 4" in check["diff"]
        bad = {"config": "node: {name: node1}\nbogus: 1\n"}
        check = (await http.post("/api/v1/config/check", json=bad)).json()
        assert not check["valid"] and any("bogus" in e for e in check["errors"])

        body = _candidate(config_dir, 4) | {"comment": "ep1 x4", "confirmed": 30}
        assert (await http.post("/api/v1/config/commit", json=body)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (
            await http.post("/api/v1/config/commit", json=body, headers=wrong)
        ).status_code == 403
        assert committer.generation == 1  # refused calls changed nothing
        answer = await http.post("/api/v1/config/commit", json=body, headers=AUTH)
        assert answer.status_code == 200
        result = answer.json()
        assert result["ok"] and result["changed"] and result["confirm_within_s"] == 30
        assert (await http.get("/api/v1/config")).json()["pending_confirm"] == {
            "commit_id": result["commit_id"]
        }
        confirmed = await http.post("/api/v1/config/confirm", headers=AUTH)
        assert confirmed.status_code == 200 and confirmed.json()["commit_id"] == result["commit_id"]

        invalid = await http.post("/api/v1/config/commit", json=bad, headers=AUTH)
        assert invalid.status_code == 422 and "bogus" in invalid.json()["error"]
        for path, payload in (
            ("/api/v1/config/commit", {"config": 5}),
            ("/api/v1/config/commit", {"config": "x", "base_dir": "relative"}),
            ("/api/v1/config/rollback", {"back": "one"}),
        ):
            refused = await http.post(path, json=payload, headers=AUTH)
            assert refused.status_code == 400, path
        assert (await http.post("/api/v1/config/frobnicate", headers=AUTH)).status_code == 404

        back = await http.post("/api/v1/config/rollback", json={"back": 1}, headers=AUTH)
        assert back.status_code == 200 and "-        weight: 4" in back.json()["diff"]
        commits = (await http.get("/api/v1/config/history")).json()["commits"]
        assert [c["origin"] for c in commits] == ["api:admin", "api:admin", "boot"]
        assert commits[1]["comment"] == "ep1 x4" and commits[1]["outcome"] == "confirmed"
        assert all("config" not in c for c in commits)
        for answer_text in (check, commits):
            assert TOKEN not in str(answer_text)
        nursery.cancel_scope.cancel()
