"""The OpenAPI 3.1 document (`web.openapi`) against the application it describes.

* The document is well formed as far as it can be checked without an OpenAPI validator: its
  structure, every ``$ref`` resolves, every schema is a valid Draft 2020-12 schema, path
  parameters match their templates, changing operations carry the bearer requirement and its
  401/403.
* It documents exactly the routes of `create_app`: each documented (path, method) reaches a
  route, each route and method is documented (HEAD, implied by GET, aside).
* In-process answers (httpx.ASGITransport) of a store populated with every kind of state value,
  and of an empty one, validate against the document; every documented (operation, status) is
  produced at least once, so a status the code no longer returns shows up too. The event
  stream's events are checked against their schemas.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from starlette.routing import Match, Route

from appliance.committer import CONFIG_CONTROL, Committer
from appliance.config import parse_config
from appliance.config.model import ProbeType
from appliance.controller import IntentController
from appliance.dataplane import DATAPLANE_STATUS, DataplaneStatus
from appliance.dataplane_access import DATAPLANE_CONNTRACK
from appliance.ha.status import HA_CONTROL, GroupStatus, group_status_key
from appliance.health.state import Health
from appliance.health.status import HEALTH_STATUS
from appliance.health.status import EndpointStatus as ProbeStatus
from appliance.intent import HaRole
from appliance.journal import JOURNAL, close_journal, open_journal
from appliance.state import StateStore
from appliance.structlog import get_logger
from appliance.supervisor import ServiceState, ServiceStatus, service_key
from appliance.sync.core import PeerStatus
from appliance.sync.status import SYNC_STATUS, SyncStatus
from bgp.codec.attr_basic import AsPath, Origin
from bgp.codec.attr_community import LargeCommunity
from bgp.codec.attributes import PathAttributes
from bgp.rib import Path as RibPath
from bgp.rib import PeerInfo
from bgp.rib import Route as RibRoute
from bgp.status import BGP_CONTROL, BGP_RIB_VIEW, NeighborStatus, neighbor_key
from bgp.types import Prefix
from bpf.conntrack import CtFilter, CtRecord, CtTuple
from bpf.layout import CT_REMOTE, CtState
from bpf.programmer import EndpointStatus as DpEndpoint
from bpf.programmer import ServiceStatus as DpService
from tests.lab.support.api_schema import ApiDocument, Exchange, pointer, sse_events
from web.app import create_app
from web.auth import TokenAuth
from web.openapi import SCHEMAS, document
from web.routes_events import _stream

EXAMPLES = Path(__file__).parents[2] / "examples"
TOKEN = "tok-ops-for-openapi-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}
ROUTER = ipaddress.ip_address("192.168.80.254")
IP = ipaddress.IPv4Address
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
#: a value for each path parameter, to turn a documented template into a concrete path
SAMPLES = {"address": "192.168.80.254", "group": "1", "service": "web", "port": "8080"}
DOC = document()
API = ApiDocument(DOC)


# --- the document itself ---------------------------------------------------------------------


def walk(node: Any, at: str = "") -> Iterator[tuple[str, Any]]:
    """Every (JSON pointer, value) of a JSON document."""
    yield at, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, at + pointer(str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{at}/{index}")


def resolve(ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = DOC
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for template, item in DOC["paths"].items():
        for method, operation in item.items():
            yield template, method, operation


def test_document_structure() -> None:
    assert DOC["openapi"] == "3.1.0"
    assert isinstance(DOC["info"]["title"], str) and isinstance(DOC["info"]["version"], str)
    schemes = DOC["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    tags = {t["name"] for t in DOC["tags"]}
    ids = [op["operationId"] for _, _, op in operations()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    for template, method, op in operations():
        where = f"{method.upper()} {template}"
        assert template.startswith("/") and method in METHODS, where
        assert set(op["tags"]) <= tags and op["summary"], where
        assert op["responses"] and all(re.fullmatch(r"[1-5]\d\d", c) for c in op["responses"])
        assert all(r["description"] for r in op["responses"].values()), where
        params = op.get("parameters", [])
        assert all(p["in"] in {"query", "path", "header", "cookie"} and p["schema"] for p in params)
        in_path = {p["name"] for p in params if p["in"] == "path"}
        assert in_path == set(re.findall(r"\{(\w+)\}", template)), where
        assert all(p.get("required") for p in params if p["in"] == "path"), where
        # a changing call (any POST but check) needs the token and answers 401/403; a read
        # never does
        secured = "security" in op
        changing = method != "get" and template != "/api/v1/config/check"
        assert secured == changing, where
        refusals = {"401", "403"} & set(op["responses"])
        assert refusals == ({"401", "403"} if secured else set()), where
        assert all(set(req) <= set(schemes) for req in op.get("security", [])), where


def test_every_ref_resolves() -> None:
    refs = [v for at, v in walk(DOC) if at.endswith("/$ref")]
    assert len(refs) > 50
    for ref in refs:
        assert isinstance(resolve(ref), dict), ref
    # and every component schema is used somewhere
    used = {r.rsplit("/", 1)[1] for r in refs}
    assert set(SCHEMAS) == used


def test_every_schema_is_valid_draft_2020_12() -> None:
    schemas = [v for at, v in walk(DOC) if at.endswith("/schema")]
    schemas += list(DOC["components"]["schemas"].values())
    for schema in schemas:
        Draft202012Validator.check_schema(schema)
    # closed objects require each of their properties unless said optional
    for name, schema in SCHEMAS.items():
        if schema.get("additionalProperties") is False:
            assert set(schema["required"]) <= set(schema["properties"]), name


def test_the_document_is_json_data() -> None:
    assert json.loads(json.dumps(DOC)) == DOC
    assert document() == DOC and document() is not DOC  # a fresh copy each time


# --- the document against the application's routes ------------------------------------------


def first_route(routes: list[Route], path: str, method: str) -> Route | None:
    """The route Starlette would dispatch ``method path`` to (None if no full match)."""
    scope = {"type": "http", "path": path, "method": method.upper()}
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
    return None


def test_the_document_covers_exactly_the_apps_routes() -> None:
    app = create_app(StateStore())
    routes = [r for r in app.routes if isinstance(r, Route)]
    assert len(routes) == len(app.routes)
    reached: set[tuple[str, str]] = set()
    for template, method, _ in operations():
        path = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], template)
        route = first_route(routes, path, method)
        assert route is not None, f"documented {method.upper()} {template} reaches no route"
        reached.add((route.path, method.upper()))
    for route in routes:
        for method in route.methods or ():
            if method != "HEAD":
                assert (route.path, method) in reached, f"undocumented {method} {route.path}"


# --- in-process answers ----------------------------------------------------------------------


class FakeRib:
    def __init__(self) -> None:
        attributes = PathAttributes(
            origin=Origin.IGP,
            as_path=AsPath.sequence([65101]),
            med=5,
            communities=(65101 << 16 | 7,),
            large_communities=(LargeCommunity(65101, 1, 2),),
        )
        peer = PeerInfo(ROUTER, IP("192.168.80.254"), 65101, True)
        self.route = RibRoute(
            ipaddress.ip_network("203.0.113.0/24"), RibPath(attributes, peer, ROUTER)
        )
        self.sent = PathAttributes(origin=Origin.IGP, as_path=AsPath.sequence([65100]), med=10)

    def received(self, peer: Any = None) -> Iterator[RibRoute]:
        yield self.route

    def best(self) -> Iterator[RibRoute]:
        yield self.route

    def advertised(self, peer: Any = None) -> Iterator[tuple[Any, Prefix, PathAttributes]]:
        yield ROUTER, ipaddress.ip_network("198.51.100.10/32"), self.sent


class FakeBgpControl:
    """The router is configured; shutdown/enable succeed once each way (409 otherwise)."""

    def __init__(self) -> None:
        self.down: set[Any] = set()

    def shutdown_peer(self, address: Any, communication: str | None) -> bool:
        done = address == ROUTER and address not in self.down
        self.down |= {address} if done else set()
        return done

    def enable_peer(self, address: Any) -> bool:
        done = address in self.down
        self.down -= {address}
        return done

    def refresh_peer(self, address: Any) -> bool:
        return address == ROUTER and address not in self.down


class FakeHaControl:
    def set_priority(self, group_id: int, priority: int | None) -> bool:
        return group_id == 1

    def hand_off(self, group_id: int) -> bool:
        return group_id == 1


def ct_record(sport: int, state: CtState | int, flags: int) -> CtRecord:
    return CtRecord(
        key=CtTuple(IP("203.0.113.10"), IP("198.51.100.10"), sport, 9000, 6),
        nat=CtTuple(IP("192.168.80.240"), IP("192.168.80.101"), sport - 10000, 9000, 6),
        svc_id=2,
        ep_index=0,
        state=state,
        flags=flags,
        age_s=12.3456,
        idle_s=0.5,
        packets=10,
        bytes=1000,
    )


class FakeConntrack:
    records = (ct_record(50000, CtState.ESTABLISHED, 0), ct_record(50001, 9, CT_REMOTE))

    def count(self) -> int:
        return len(self.records)

    def entries(
        self, limit: int = 100, offset: int = 0, filter: CtFilter | None = None
    ) -> list[CtRecord]:
        found = [r for r in self.records if filter is None or filter.matches(r)]
        return found[offset : offset + limit]


class BrokenConntrack(FakeConntrack):
    def entries(
        self, limit: int = 100, offset: int = 0, filter: CtFilter | None = None
    ) -> list[CtRecord]:
        raise OSError("map gone")


def dataplane_status() -> DataplaneStatus:
    def service(name: str, ident: int, port: int, ep_port: int) -> DpService:
        endpoints = tuple(
            DpEndpoint(f"192.168.80.10{i + 1}", ep_port, i, 1, "active", 1, 5, 500, 2, 0)
            for i in range(3)
        )
        return DpService(name, "198.51.100.10", port, "tcp", ident, ident, endpoints, 9, 900, 3, 0)

    return DataplaneStatus(
        node="node1",
        adopted=False,
        layout_reset=False,
        attached=(("eth0", ("tc_ingress", "tc_egress")),),
        services=(service("web", 1, 80, 8080), service("echo", 2, 9000, 9000)),
        connections=2,
        events=7,
        events_dropped=0,
    )


def populate(store: StateStore, config_dir: Path) -> Committer:
    """Every kind of value the API reads; returns the committer (to run)."""
    cfg = parse_config((config_dir / "node1.yaml").read_text(), "node1.yaml", config_dir)
    committer = Committer(store, cfg, followers=list, base_dir=config_dir)
    store.publish(CONFIG_CONTROL, committer)
    store.publish(service_key("bgp"), ServiceStatus(ServiceState.RUNNING, since=3.5))
    store.publish(service_key("ha"), ServiceStatus(ServiceState.BACKOFF, 2, "boom", 9.0))
    store.publish(
        neighbor_key(ROUTER),
        NeighborStatus(
            ROUTER,
            65101,
            "lab router",
            "Established",
            time.time() - 5,
            1,
            1,
            1,
            1,
            3,
            4,
            None,
            IP("192.168.80.252"),
            "192.168.80.254",
            9,
            True,
            False,
            3.0,
        ),
    )
    store.publish(BGP_RIB_VIEW, FakeRib())
    store.publish(BGP_CONTROL, FakeBgpControl())
    store.publish(
        group_status_key(1),
        GroupStatus(
            1,
            "eth0",
            "master",
            HaRole.ACTIVE,
            150,
            150,
            IP("192.168.80.252"),
            (IP("198.51.100.10"), IP("192.168.80.240")),
            1,
            "priority",
            {"auth-forged": 1},
            10,
            12,
            None,
        ),
    )
    store.publish(HA_CONTROL, FakeHaControl())
    peer = PeerStatus(
        ("192.168.80.253", 7946), 2, "up", 7, 1, 2, 3, 4, 0, 0, 0, 0.0, 1, 1, 0, 0.2, {}
    )
    store.publish(SYNC_STATUS, SyncStatus(1, "192.168.80.252:7946", True, (peer,), 5, 1))
    store.publish(DATAPLANE_STATUS, dataplane_status())
    store.publish(
        HEALTH_STATUS,
        tuple(
            ProbeStatus(
                "web",
                IP(f"192.168.80.10{i}"),
                8080,
                ProbeType.HTTP,
                8080,
                True,
                Health.UP,
                True,
                None,
                1.5,
                2,
                0,
                1.0,
                2.0,
            )
            for i in (1, 2)
        ),
    )
    store.publish(DATAPLANE_CONNTRACK, FakeConntrack())
    return committer


def candidate(config_dir: Path, weight: int | None = None) -> dict[str, Any]:
    text = (config_dir / "node1.yaml").read_text()
    if weight is not None:
        text = text.replace(
            "- {address: 192.168.80.101", f"- {{weight: {weight}, address: 192.168.80.101", 1
        )
    return {"config": text, "base_dir": str(config_dir)}


Call = tuple[str, str, dict[str, Any], Any, dict[str, str] | None, int]
DRAIN = "/api/v1/services/web/endpoints/192.168.80.102/8080/drain"
PEER = "/api/v1/bgp/neighbors/192.168.80.254"


def secured_calls(path: str, body: Any = None) -> list[Call]:
    """No token (401), a wrong one (403)."""
    return [("POST", path, {}, body, None, 401), ("POST", path, {}, body, WRONG, 403)]


def populated_calls(config_dir: Path) -> list[Call]:
    """(method, path, params, json body, headers, expected status), in order."""
    bad_config = {"config": "node: {name: node1}\nbogus: 1\n"}
    gets: list[Call] = [
        ("GET", path, params, None, None, status)
        for path, params, status in (
            ("/api/v1/node", {}, 200),
            ("/api/v1/bgp/neighbors", {}, 200),
            ("/api/v1/bgp/routes", {}, 200),
            ("/api/v1/bgp/routes", {"view": "received", "peer": str(ROUTER)}, 200),
            ("/api/v1/bgp/routes", {"view": "advertised", "limit": "5", "offset": "0"}, 200),
            ("/api/v1/bgp/routes", {"view": "sideways"}, 400),
            ("/api/v1/ha", {}, 200),
            ("/api/v1/sync", {}, 200),
            ("/api/v1/services", {}, 200),
            ("/api/v1/conntrack", {}, 200),
            ("/api/v1/conntrack", {"count": "true"}, 200),
            ("/api/v1/conntrack", {"count": "yes", "remote": "1"}, 200),
            ("/api/v1/conntrack", {"service": "echo", "state": "established", "limit": "1"}, 200),
            ("/api/v1/conntrack", {"client": "203.0.113.10", "vip": "198.51.100.10"}, 200),
            ("/api/v1/conntrack", {"endpoint": "192.168.80.101", "offset": "1"}, 200),
            ("/api/v1/conntrack", {"vip": "::1"}, 400),
            ("/api/v1/conntrack", {"state": "dancing"}, 400),
            ("/api/v1/config", {}, 200),
            ("/api/v1/config/history", {}, 200),
            ("/api/v1/events", {}, 200),
            ("/api/v1/events", {"since": "1", "limit": "2"}, 200),
            ("/api/v1/events", {"since": "x"}, 400),
            ("/api/v1/openapi.json", {}, 200),
            ("/metrics", {}, 200),
            ("/", {}, 200),
            ("/static/dashboard.js", {}, 200),
            ("/static/dashboard.css", {}, 200),
        )
    ]
    posts: list[Call] = [
        ("POST", "/api/v1/config/check", {}, candidate(config_dir, 4), None, 200),
        ("POST", "/api/v1/config/check", {}, bad_config, None, 200),
        ("POST", "/api/v1/config/check", {}, {"config": 5}, None, 400),
        ("POST", "/api/v1/config/commit", {}, candidate(config_dir, 4) | {"confirmed": 30},
         AUTH, 200),
        ("POST", "/api/v1/config/confirm", {}, None, AUTH, 200),
        ("POST", "/api/v1/config/confirm", {}, None, AUTH, 422),
        ("POST", "/api/v1/config/confirm", {}, {"comment": 5}, AUTH, 400),
        ("POST", "/api/v1/config/commit", {}, bad_config, AUTH, 422),
        ("POST", "/api/v1/config/commit", {}, {"config": "x", "base_dir": "rel"}, AUTH, 400),
        ("POST", "/api/v1/config/commit", {}, candidate(config_dir), AUTH, 200),
        ("POST", "/api/v1/config/rollback", {}, {"back": "one"}, AUTH, 400),
        ("POST", "/api/v1/config/rollback", {}, {"back": 99}, AUTH, 422),
        ("POST", "/api/v1/config/rollback", {}, {"back": 1, "comment": "undo"}, AUTH, 200),
        ("POST", DRAIN, {}, {"drain": True}, AUTH, 200),
        ("POST", DRAIN, {}, {"drain": "yes"}, AUTH, 400),
        ("POST", DRAIN.replace("web", "nope"), {}, {}, AUTH, 404),
        ("POST", DRAIN, {}, {"drain": False}, AUTH, 200),
        ("POST", f"{PEER}/shutdown", {}, {"communication": "maintenance"}, AUTH, 200),
        ("POST", f"{PEER}/shutdown", {}, None, AUTH, 409),
        ("POST", f"{PEER}/shutdown", {}, {"communication": "x" * 256}, AUTH, 400),
        ("POST", "/api/v1/bgp/neighbors/192.168.80.99/shutdown", {}, None, AUTH, 404),
        ("POST", f"{PEER}/refresh", {}, None, AUTH, 409),
        ("POST", f"{PEER}/enable", {}, None, AUTH, 200),
        ("POST", f"{PEER}/enable", {}, None, AUTH, 409),
        ("POST", "/api/v1/bgp/neighbors/not-an-ip/enable", {}, None, AUTH, 400),
        ("POST", "/api/v1/bgp/neighbors/192.168.80.99/enable", {}, None, AUTH, 404),
        ("POST", f"{PEER}/refresh", {}, None, AUTH, 200),
        ("POST", "/api/v1/bgp/neighbors/not-an-ip/refresh", {}, None, AUTH, 400),
        ("POST", "/api/v1/bgp/neighbors/192.168.80.99/refresh", {}, None, AUTH, 404),
        ("POST", "/api/v1/ha/1/priority", {}, {"priority": 200}, AUTH, 200),
        ("POST", "/api/v1/ha/1/priority", {}, {"priority": 0}, AUTH, 400),
        ("POST", "/api/v1/ha/7/priority", {}, {"priority": None}, AUTH, 404),
        ("POST", "/api/v1/ha/1/priority", {}, {"priority": None}, AUTH, 200),
        ("POST", "/api/v1/ha/1/handoff", {}, None, AUTH, 200),
        ("POST", "/api/v1/ha/1/handoff", {}, [1], AUTH, 400),
        ("POST", "/api/v1/ha/7/handoff", {}, None, AUTH, 404),
    ]  # fmt: skip
    secured = {(m, p) for m, p, *_ in posts if p != "/api/v1/config/check"}
    refused = [call for _, path in sorted(secured) for call in secured_calls(path)]
    return gets + refused + posts


def empty_calls() -> list[Call]:
    """What a node without running configuration, BGP, sync, dataplane or journal answers."""
    return [
        ("GET", "/api/v1/node", {}, None, None, 503),
        ("GET", "/api/v1/bgp/routes", {}, None, None, 404),
        ("GET", "/api/v1/sync", {}, None, None, 404),
        ("GET", "/api/v1/services", {}, None, None, 404),
        ("GET", "/api/v1/conntrack", {}, None, None, 404),
        ("GET", "/api/v1/config", {}, None, None, 503),
        ("GET", "/api/v1/config/history", {}, None, None, 503),
        ("GET", "/api/v1/events", {}, None, None, 503),
        ("POST", "/api/v1/config/check", {}, {"config": "x"}, None, 503),
        ("POST", "/api/v1/config/commit", {}, {"config": "x"}, AUTH, 503),
        ("POST", "/api/v1/config/confirm", {}, None, AUTH, 503),
        ("POST", "/api/v1/config/rollback", {}, None, AUTH, 503),
    ]


async def run_calls(store: StateStore, calls: list[Call]) -> list[Exchange]:
    """Make each call in-process and check its status; the exchanges."""
    app = create_app(store, TokenAuth({TOKEN: "ops"}))
    exchanges = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://node"
    ) as http:
        for method, path, params, body, headers, status in calls:
            answer = await http.request(method, path, params=params, json=body, headers=headers)
            exchange = Exchange(
                method, path, answer.status_code, answer.headers["content-type"], answer.text,
                params,
            )  # fmt: skip
            assert answer.status_code == status, f"{exchange}: {answer.text[:300]}"
            exchanges.append(exchange)
    return exchanges


def documented_answers() -> set[tuple[str, str, str]]:
    return {(t, m, s) for t, m, op in operations() for s in op["responses"]}


def answered(exchanges: list[Exchange]) -> set[tuple[str, str, str]]:
    return {(API.template(e.path) or "?", e.method.lower(), str(e.status)) for e in exchanges}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    shutil.copy(EXAMPLES / "scenario4-ctsync-node1.yaml", tmp_path / "node1.yaml")
    return tmp_path


async def stream_exchange(store: StateStore) -> Exchange:
    """The stream's first events (its generator, as a client would read it for a while)."""

    class Client:
        polls = 3

        async def is_disconnected(self) -> bool:
            self.polls -= 1
            return self.polls < 0

    chunks = [c async for c in _stream(store, Client())]  # type: ignore[arg-type]
    return Exchange("GET", "/api/v1/stream", 200, "text/event-stream", "".join(chunks))


async def test_responses_follow_the_document(config_dir: Path) -> None:
    store = StateStore()
    journal = open_journal()
    store.publish(JOURNAL, journal)
    committer = populate(store, config_dir)
    await IntentController(store).recompute()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(committer.run)
            exchanges = await run_calls(store, populated_calls(config_dir))
            nursery.cancel_scope.cancel()
        get_logger("ha").info("ha_state", group=1, new="master")
        stream = await stream_exchange(store)
        exchanges.append(stream)
        exchanges += await run_calls(StateStore(), empty_calls())
        broken = StateStore()
        broken.publish(DATAPLANE_CONNTRACK, BrokenConntrack())
        exchanges += await run_calls(broken, [("GET", "/api/v1/conntrack", {}, None, None, 503)])
    finally:
        close_journal(journal)

    problems = [p for e in exchanges for p in API.problems(e)]
    assert not problems, "\n".join(problems)
    missing = documented_answers() - answered(exchanges)
    assert not missing, f"documented answers never produced: {sorted(missing)}"
    by_kind = {kind for kind, _ in sse_events(stream.body)}
    assert by_kind == {"journal", "state"}
    # the data really was there (not a page of nothing validating trivially)
    page = next(e.json() for e in exchanges if e.path == "/api/v1/conntrack" and not e.params)
    assert [c["state"] for c in page["connections"]] == ["established", "unknown(9)"]
    served = next(e.json() for e in exchanges if e.path == "/api/v1/openapi.json")
    assert served == DOC
    commits = next(e.json() for e in exchanges if e.path == "/api/v1/config/history")
    assert commits["commits"][0]["origin"] == "boot"


def test_closed_schemas_catch_a_field_added_or_removed() -> None:
    at = pointer("components", "schemas", "Node")
    node = {"name": "n", "id": 1, "router_id": None, "config_generation": 1, "services": {}}
    assert API.schema_problems(at, node) == []
    assert API.schema_problems(at, {**node, "uptime": 3})
    assert API.schema_problems(at, {k: v for k, v in node.items() if k != "id"})


async def test_an_unknown_bgp_action_is_refused(config_dir: Path) -> None:
    store = StateStore()
    populate(store, config_dir)
    await run_calls(store, [("POST", f"{PEER}/frobnicate", {}, None, AUTH, 404)])


async def test_a_handoff_answers_as_documented_whatever_its_body(config_dir: Path) -> None:
    store = StateStore()
    populate(store, config_dir)
    (exchange,) = await run_calls(
        store, [("POST", "/api/v1/ha/1/handoff", {}, {"priority": "high"}, AUTH, 200)]
    )
    assert API.problems(exchange) == []
