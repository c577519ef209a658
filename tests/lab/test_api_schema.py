"""The node's HTTP API answers as its OpenAPI document says, on real daemons (issue 9).

Scenario 4 with both daemons (HA with node1 active, BGP to the lab router's BIRD, full-NAT
services, conntrack sync); node1's token file holds two named tokens (``ops``, ``ci``). After
a few client connections (echo streams and HTTP requests through the VIP, so services and
conntrack have data, synced to node2), a client inside node1's namespace
(`tests.lab.support.api_schema`, httpx to 127.0.0.1:8080) calls:

* every documented GET, with representative parameters (every conntrack filter, the three
  BGP route views, event paging), and the first seconds of the event stream;
* every changing operation without a token (401) and with a wrong one (403), and with a right
  one where harmless: config check, commit of the running file (no change), confirm with
  nothing pending (422), a real commit (probe interval) by ``ci`` undone by a rollback by
  ``ops``, an endpoint drained then undrained, a BGP route refresh, HA priority set then
  cleared, and refusals (unknown neighbour, group, endpoint; bad values).

Every answer's status is the one expected and documented, and its body validates against the
document; every documented operation was called. No answer (nor the dashboard, the metrics,
the stream, the daemon's log) contains a token or a key file's contents, and the configuration
history names the tokens that made the changes (``api:ci``, ``api:ops``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.api import LabHandle
from tests.lab.support import ctsync as cs
from tests.lab.support import dataplane as dp
from tests.lab.support.api_schema import ApiDocument, Exchange, sse_events
from tests.lab.support.polling import wait_for
from web.auth import parse_tokens
from web.openapi import document

pytestmark = pytest.mark.lab

TOKENS = {"ops": "lab-ops-token-4f1d9c2a7e", "ci": "lab-ci-token-8b3e6d0f51"}
WRONG = "lab-wrong-token-000000"
ROUTER = "192.168.80.254"
UNKNOWN = "192.168.80.99"  # on the cluster LAN, configured nowhere
DRAIN = "/api/v1/services/web/endpoints/192.168.80.101/8080/drain"
STREAMS = 3
HTTP_REQUESTS = 6
API = ApiDocument(document())

Request = dict[str, Any]


def get(path: str, status: int = 200, **params: str) -> Request:
    return {"method": "GET", "path": path, "params": params, "expect": status}


def post(path: str, status: int, body: Any = None, token: str | None = None) -> Request:
    return {"method": "POST", "path": path, "json": body, "token": token, "expect": status}


def call(handle: LabHandle, requests: list[Request]) -> list[Exchange]:
    """Make ``requests`` from inside node1's namespace; each status must be the expected."""
    argv = [sys.executable, "-m", "tests.lab.support.api_schema"]
    result = handle.exec("node1", argv, timeout=120, input=json.dumps(requests))
    assert result.returncode == 0, result.stderr
    exchanges = [Exchange.from_json(e) for e in json.loads(result.stdout)]
    for request, exchange in zip(requests, exchanges, strict=True):
        assert exchange.status == request["expect"], f"{exchange}: {exchange.body[:400]}"
    return exchanges


def api_json(handle: LabHandle, path: str, **params: str) -> Any:
    (exchange,) = call(handle, [get(path, 200, **params)])
    return exchange.json()


# --- the lab -----------------------------------------------------------------------------------


def start(lab_factory: Callable[..., LabHandle], tmp_path: Path) -> tuple[LabHandle, Path]:
    """Scenario 4, both daemons, node1 with the two named tokens; returns once node1 is
    active and preferred at BIRD with sync up. The handle and node1's config file."""
    handle = lab_factory("scenario4")
    tokens = tmp_path / "web.tokens"
    tokens.write_text("".join(f"{name} {token}\n" for name, token in TOKENS.items()))
    configs = {node: cs.node_config(tmp_path, node) for node in cs.NODES}
    tree = yaml.safe_load(configs["node1"].read_text())
    tree["web"]["token_file"] = str(tokens)
    configs["node1"].write_text(yaml.safe_dump(tree, sort_keys=False))
    for node in cs.NODES:
        cs.spawn_daemon(handle, node, configs[node], f"{node}-daemon")
    for node in cs.NODES:
        cs.wait_daemon_ready(handle, f"{node}-daemon")
    wait_for(lambda: cs.role(handle, "node1") == "active", "node1 active", cs.FAILOVER_S)
    wait_for(
        lambda: cs.preferred_at_bird(handle, "node1"),
        "BIRD's best route via node1",
        cs.FAILOVER_S,
        describe=lambda: cs.describe_bird(handle),
    )

    def sync_up() -> bool:
        status = cs.sync_status(handle, "node1")
        return status is not None and [p["state"] for p in status["peers"]] == ["up"]

    wait_for(sync_up, "node1's sync peer up", cs.WAIT_S)
    return handle, configs["node1"]


def make_traffic(handle: LabHandle, tmp_path: Path) -> cs.Streams:
    """Echo streams (established, synced to node2) and HTTP requests through the VIP."""
    streams = cs.Streams(handle, tmp_path, "streams", cs.ECHO_TARGET, STREAMS)
    streams.wait_connected()
    results = dp.http_gets(handle, cs.VIP, cs.WEB_PORT, HTTP_REQUESTS)
    assert not dp.failures(results), dp.failures(results)

    def established() -> bool:
        body = api_json(handle, "/api/v1/conntrack", service="echo", state="established")
        return len(body["connections"]) >= STREAMS

    wait_for(established, f"node1's {STREAMS} established echo connections", cs.WAIT_S)
    wait_for(lambda: cs.remote_count(handle, "node2") >= STREAMS, "node2's synced copies")
    return streams


# --- the calls ---------------------------------------------------------------------------------


def reads() -> list[Request]:
    ct = "/api/v1/conntrack"
    return [
        get("/api/v1/node"),
        get("/api/v1/bgp/neighbors"),
        get("/api/v1/bgp/routes"),
        get("/api/v1/bgp/routes", view="received", peer=ROUTER),
        get("/api/v1/bgp/routes", view="advertised", limit="10", offset="0"),
        get("/api/v1/bgp/routes", 400, view="sideways"),
        get("/api/v1/ha"),
        get("/api/v1/sync"),
        get("/api/v1/services"),
        get(ct),
        get(ct, count="true"),
        get(ct, count="1", remote="no"),
        get(ct, service="echo", state="established", limit="2", offset="1"),
        get(ct, client=dp.L3_CLIENT, vip=cs.VIP, remote="false"),
        get(ct, endpoint=dp.EP_ADDRESSES["ep1"], state="fin-wait"),
        get(ct, 400, service="nope"),
        get(ct, 400, vip="::1"),
        get("/api/v1/config"),
        get("/api/v1/config/history"),
        get("/api/v1/events"),
        get("/api/v1/events", since="1", limit="5"),
        get("/api/v1/events", 400, limit="-1"),
        get("/api/v1/openapi.json"),
        get("/metrics"),
        get("/"),
        get("/static/dashboard.js"),
        get("/static/dashboard.css"),
        {**get("/api/v1/stream"), "stream": True},
    ]


def refusals() -> list[Request]:
    """Every changing operation without a token, then with a wrong one."""
    paths = [
        *(f"/api/v1/config/{verb}" for verb in ("commit", "confirm", "rollback")),
        DRAIN,
        *(f"/api/v1/bgp/neighbors/{ROUTER}/{verb}" for verb in ("shutdown", "enable", "refresh")),
        "/api/v1/ha/1/handoff",
        "/api/v1/ha/1/priority",
    ]
    return [post(p, 401) for p in paths] + [post(p, 403, token=WRONG) for p in paths]


def changes(config: Path) -> list[Request]:
    ops, ci = TOKENS["ops"], TOKENS["ci"]
    running = {"config": config.read_text()}
    tree = yaml.safe_load(config.read_text())
    tree["services"][0]["probe"]["interval_ms"] = 900
    changed = {"config": yaml.safe_dump(tree, sort_keys=False), "comment": "web probe 0.9 s"}
    peer = f"/api/v1/bgp/neighbors/{ROUTER}"
    return [
        post("/api/v1/config/check", 200, running),
        post("/api/v1/config/check", 200, {"config": "node: {name: node1}\nbogus: 1\n"}),
        post("/api/v1/config/check", 400, {"config": 5}),
        post("/api/v1/config/commit", 200, running, ops),  # the same: no change
        post("/api/v1/config/confirm", 422, None, ops),  # nothing pending
        post("/api/v1/config/rollback", 422, {"back": 99}, ops),
        post("/api/v1/config/rollback", 400, {"back": "one"}, ops),
        post("/api/v1/config/commit", 200, changed, ci),
        post("/api/v1/config/rollback", 200, {"back": 1, "comment": "undo"}, ops),
        post(DRAIN, 200, {"drain": True}, ops),
        post(DRAIN, 200, {"drain": False}, ops),
        post(DRAIN, 400, {"drain": "yes"}, ops),
        post(DRAIN.replace("192.168.80.101", UNKNOWN), 404, {}, ops),
        post(f"{peer}/refresh", 200, None, ops),
        post(f"/api/v1/bgp/neighbors/{UNKNOWN}/refresh", 404, None, ops),
        post(f"/api/v1/bgp/neighbors/{UNKNOWN}/shutdown", 404, {"communication": "x"}, ops),
        post(f"/api/v1/bgp/neighbors/{UNKNOWN}/enable", 404, None, ops),
        post(f"{peer}/shutdown", 400, {"communication": "x" * 256}, ops),
        post("/api/v1/ha/1/priority", 200, {"priority": 160}, ops),
        post("/api/v1/ha/1/priority", 200, {"priority": None}, ops),
        post("/api/v1/ha/1/priority", 400, {"priority": 0}, ops),
        post("/api/v1/ha/99/handoff", 404, None, ops),
    ]


def after() -> list[Request]:
    return [
        get("/api/v1/config/history"),
        get("/api/v1/events", limit="500"),
        get("/api/v1/ha"),
        get("/api/v1/services"),
        {**get("/api/v1/stream"), "stream": True},
    ]


# --- checks ------------------------------------------------------------------------------------


def secrets(config: Path) -> dict[str, str]:
    """Every secret the node knows: its tokens, node2's, the key files' contents, a BGP
    password if the configuration names one."""
    found = {f"token {name}": token for name, token in TOKENS.items()}
    shipped = cs.EXAMPLES / "secrets"
    for token, name in parse_tokens((shipped / "web.token").read_text()).items():
        found[f"web.token {name}"] = token
    for key in ("ha.key", "sync.key"):
        found[key] = (shipped / key).read_text().strip()
    tree = yaml.safe_load(config.read_text())
    for peer in tree["bgp"]["peers"]:
        if peer.get("password_file"):
            found[f"bgp {peer['address']}"] = Path(peer["password_file"]).read_text().strip()
    assert all(len(s) >= 16 for s in found.values()), "a secret too short to search for"
    return found


def leaks(texts: dict[str, str], known: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}" for where, t in texts.items() for what, s in known.items() if s in t
    ]


def test_every_endpoint_answers_as_documented(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle, config = start(lab_factory, tmp_path)
    streams = make_traffic(handle, tmp_path)
    exchanges = call(handle, reads())
    exchanges += call(handle, refusals())
    exchanges += call(handle, changes(config))
    final = call(handle, after())
    exchanges += final
    streams.stop()

    problems = [p for e in exchanges for p in API.problems(e)]
    assert not problems, "\n".join(problems)
    called = {(API.template(e.path), e.method.lower()) for e in exchanges}
    assert set(API.operations()) <= called, set(API.operations()) - called

    by_path = {(e.path, tuple(sorted(e.params.items()))): e for e in exchanges}
    page = by_path[("/api/v1/conntrack", ())].json()
    assert page["total"] >= STREAMS and page["connections"]
    services = {s["name"]: s for s in by_path[("/api/v1/services", ())].json()["services"]}
    assert services["echo"]["connections"] >= STREAMS and services["web"]["packets"] > 0
    served = by_path[("/api/v1/openapi.json", ())].json()
    assert served == document()

    history, events, ha, services_after, stream = final
    origins = [c["origin"] for c in history.json()["commits"]]
    assert origins[:2] == ["api:ops", "api:ci"], origins
    actions = [e["fields"] for e in events.json()["events"] if e["event"] == "api_action"]
    assert {(a["by"], a["action"]) for a in actions} >= {
        ("ops", "drain"),
        ("ops", "undrain"),
        ("ops", "bgp refresh"),
        ("ops", "ha priority"),
    }, actions
    (group,) = ha.json()["groups"]
    assert group["priority_override"] is None and group["role"] == "active"
    assert not any(
        ep["drained"] for s in services_after.json()["services"] for ep in s["endpoints"]
    )
    kinds = {kind for kind, _ in sse_events(stream.body)}
    assert kinds == {"journal", "state"}, stream.body[:500]

    texts = {str(e): e.body for e in exchanges}
    texts["node1's log"] = handle.log_path("node1-daemon").read_text(errors="replace")
    found = leaks(texts, secrets(config))
    assert not found, found
