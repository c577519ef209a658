"""/api/v1/services and /api/v1/conntrack over real pinned maps (stub program), and
`triolb show services` / `show conntrack` against the app served by hypercorn.

The maps are programmed by the real `Programmer` from a parsed configuration; connections are
written with `Conntrack.insert` (sync's path: flagged remote) and, for a local one, straight
into the kernel map; per-CPU counters are written into the kernel maps too. The status is the
one `DataplaneService` publishes, built from `Programmer.status()`.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from appliance.config import parse_config
from appliance.config.model import ProbeType
from appliance.controller import ENDPOINT_HEALTH
from appliance.dataplane import DATAPLANE_STATUS, DataplaneStatus
from appliance.dataplane_access import (
    DATAPLANE_CONNTRACK,
    LockedConntrack,
    publish_conntrack,
    withdraw_conntrack,
)
from appliance.health.state import Health
from appliance.health.status import HEALTH_STATUS
from appliance.health.status import EndpointStatus as ProbeStatus
from appliance.intent import INTENT, compute_intent
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore
from bpf.conntrack import Conntrack, CtTuple
from bpf.layout import MAX_ENDPOINTS, CtEntry, CtState, Stats, be16, be32
from bpf.loader import Dataplane
from bpf.maps import BpfMap
from bpf.model import services_from_intent
from bpf.programmer import Programmer
from tests.dataplane.support_loader import bpffs, loaded, node, stub_source
from web.app import create_app

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "loaded", "node", "stub_source"]

IP = ipaddress.IPv4Address
CONFIG = """\
node: {name: n1, id: 1}
services:
  - name: web
    vip: 198.51.100.10
    port: 80
    mode: fullnat
    selection: leastconn
    endpoints:
      - {address: 192.168.80.101, port: 8080, weight: 2}
      - {address: 192.168.80.102, port: 8080}
  - name: dns
    vip: 198.51.100.11
    port: 53
    protocol: udp
    endpoints:
      - {address: 192.168.80.103}
"""
NS = 1_000_000_000


@attrs.frozen
class Conn:
    client: str
    sport: int
    service: str
    endpoint: str
    state: CtState
    age_s: int
    remote: bool


CONNS = (
    Conn("203.0.113.10", 40001, "web", "192.168.80.101", CtState.ESTABLISHED, 30, True),
    Conn("203.0.113.11", 40002, "web", "192.168.80.102", CtState.FIN_WAIT, 20, True),
    Conn("203.0.113.10", 40003, "dns", "192.168.80.103", CtState.UDP, 10, False),
)


@attrs.define
class Rig:
    store: StateStore
    dataplane: Dataplane
    conntrack: Conntrack
    ids: dict[str, int]
    indexes: dict[tuple[str, str], int]


def _write_stats(dp: Dataplane, which: str, index: int, per_cpu: list[tuple[int, int]]) -> None:
    """Per-CPU (packets, bytes) into the kernel map ``which`` (svc_stats / ep_stats)."""
    percpu = getattr(dp.maps, which)
    array = (Stats * percpu.cpus)()
    for cpu, (packets, nbytes) in enumerate(per_cpu):
        array[cpu] = Stats(packets=packets, bytes=nbytes, conns=1, drops=0)
    raw = BpfMap[ctypes.c_uint32, Any](which, percpu.fd, ctypes.c_uint32, type(array))
    raw.update(ctypes.c_uint32(index), array)


def _add_connection(rig: Rig, conn: Conn, now: int) -> None:
    cfg = rig.store.require(RUNNING_CONFIG)
    service = next(s for s in cfg.services if s.name == conn.service)
    assert service.vip is not None
    udp = service.protocol.value == "udp"
    key = CtTuple(IP(conn.client), IP(str(service.vip)), conn.sport, service.port, 17 if udp else 6)
    entry = CtEntry(
        nat_src=be32(str(service.vip)),
        nat_dst=be32(conn.endpoint),
        nat_sport=be16(conn.sport + 1000),
        nat_dport=be16(service.endpoints[0].port if udp else 8080),
        svc_id=rig.ids[conn.service],
        ep_index=rig.indexes[(conn.service, conn.endpoint)],
        state=conn.state,
        packets=conn.sport % 100,
        bytes=conn.sport % 100 * 100,
        created_ns=now - conn.age_s * NS,
        last_ns=now,
    )
    if conn.remote:
        rig.conntrack.insert(key.to_key(), entry, now_ns=now)
    else:  # as the program writes a local connection (forward entry, no remote flag)
        rig.dataplane.maps.conntrack.update(key.to_key(), entry)


def _publish_status(rig: Rig, programmer: Programmer) -> None:
    status = DataplaneStatus(
        node="n1",
        adopted=rig.dataplane.result.adopted,
        layout_reset=rig.dataplane.result.layout_reset,
        attached=(("eth0", ("ingress",)), ("eth1", ("ingress", "egress"))),
        services=programmer.status(),
        connections=rig.conntrack.count(),
        events=0,
        events_dropped=0,
    )
    rig.store.publish(DATAPLANE_STATUS, status)


def _probes() -> tuple[ProbeStatus, ...]:
    ep1, ep2 = ipaddress.ip_address("192.168.80.101"), ipaddress.ip_address("192.168.80.102")
    return (
        ProbeStatus("web", ep1, 8080, ProbeType.TCP, 8080, True, Health.UP, True, None, 0.412),
        ProbeStatus(
            "web", ep2, 8080, ProbeType.TCP, 8080, False, Health.DOWN, False, "refused", 1.5
        ),
    )


@pytest.fixture
def rig(loaded: Dataplane) -> Iterator[Rig]:
    store = StateStore()
    cfg = parse_config(CONFIG)
    store.publish(RUNNING_CONFIG, cfg)
    programmer = Programmer(loaded.maps, 1)
    web, dns = services_from_intent(compute_intent(cfg, {}))
    # the second endpoint of web drains (as when its health went down)
    draining = attrs.evolve(web.endpoints[1], active=False)
    report = programmer.reconcile([attrs.evolve(web, endpoints=(web.endpoints[0], draining)), dns])
    assert not report.errors
    ids = {name: programmer.ids[s.key] for name, s in (("web", web), ("dns", dns))}
    indexes = {
        (name, str(address)): index
        for name, s in (("web", web), ("dns", dns))
        for (address, _port), index in programmer.indexes(ids[name]).items()
    }
    rig = Rig(store, loaded, Conntrack(loaded.maps), ids, indexes)
    now = time.monotonic_ns()
    for conn in CONNS:
        _add_connection(rig, conn, now)
    _write_stats(loaded, "svc_stats", ids["web"], [(10, 1000), (5, 500)])
    ep1 = ids["web"] * MAX_ENDPOINTS + indexes[("web", "192.168.80.101")]
    _write_stats(loaded, "ep_stats", ep1, [(7, 700), (1, 100)])
    _publish_status(rig, programmer)
    store.publish(HEALTH_STATUS, _probes())
    store.publish(ENDPOINT_HEALTH, {("dns", ipaddress.ip_address("192.168.80.103"), 53): True})
    store.publish(INTENT, compute_intent(cfg, {}))
    publish_conntrack(store, rig.conntrack, threading.Lock())
    yield rig


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(rig.store))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        yield http


async def _get(http: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _clients(body: Any) -> list[tuple[str, int]]:
    return [(c["client"], c["client_port"]) for c in body["connections"]]


async def test_services_lists_every_field(rig: Rig, client: httpx.AsyncClient) -> None:
    body = await _get(client, "/api/v1/services")
    assert body["node"] == "n1"
    assert body["attached"] == [
        {"interface": "eth0", "hooks": ["ingress"]},
        {"interface": "eth1", "hooks": ["ingress", "egress"]},
    ]
    assert (body["adopted"], body["layout_reset"], body["connections"]) == (False, False, 3)
    web, dns = body["services"]
    assert {k: v for k, v in web.items() if k != "endpoints"} == {
        "name": "web",
        "vip": "198.51.100.10",
        "port": 80,
        "protocol": "tcp",
        "mode": "fullnat",
        "selection": "leastconn",
        "id": rig.ids["web"],
        "slot": web["slot"],
        "packets": 15,
        "bytes": 1500,
        "connections": 2,
        "drops": 0,
        "route": "withdrawn",
        "withdrawn_reason": "bgp not configured",
        "role": "active",
    }
    assert (body["unallocated"], body["pool_conflicts"]) == ([], [])
    assert web["slot"] in (0, 1)
    ep1, ep2 = web["endpoints"]
    assert ep1 == {
        "address": "192.168.80.101",
        "port": 8080,
        "index": rig.indexes[("web", "192.168.80.101")],
        "weight": 2,
        "state": "active",
        "drained": False,
        "health": "up",
        "probe": "tcp",
        "latency_ms": 0.412,
        "last_error": None,
        "checked_at": None,
        "open_connections": 1,
        "packets": 8,
        "bytes": 800,
        "connections": 2,
        "drops": 0,
    }
    assert (ep2["address"], ep2["state"], ep2["health"]) == ("192.168.80.102", "draining", "down")
    assert (ep2["last_error"], ep2["latency_ms"], ep2["open_connections"]) == ("refused", 1.5, 1)
    assert (dns["protocol"], dns["mode"], dns["selection"]) == ("udp", "default", "roundrobin")
    (dns_ep,) = dns["endpoints"]
    # no probe status for it: health from the controller's up/down map, no latency
    assert (dns_ep["address"], dns_ep["port"], dns_ep["health"]) == ("192.168.80.103", 53, "up")
    assert dns_ep["latency_ms"] is None and dns_ep["open_connections"] == 0


async def test_count_and_the_fields_of_a_connection(client: httpx.AsyncClient) -> None:
    assert await _get(client, "/api/v1/conntrack", count="1") == {"count": 3}
    assert await _get(client, "/api/v1/conntrack", count="1", service="web") == {"count": 2}
    body = await _get(client, "/api/v1/conntrack")
    assert (body["total"], body["offset"], body["limit"]) == (3, 0, 100)
    first = body["connections"][0]
    assert 29 < first.pop("age_s") < 60 and 0 <= first.pop("idle_s") < 30
    assert first == {
        "protocol": "tcp",
        "client": "203.0.113.10",
        "client_port": 40001,
        "vip": "198.51.100.10",
        "vip_port": 80,
        "endpoint": "192.168.80.101",
        "endpoint_port": 8080,
        "source": "198.51.100.10",
        "source_port": 41001,
        "service": "web",
        "service_id": first["service_id"],
        "endpoint_index": first["endpoint_index"],
        "state": "established",
        "packets": 1,
        "bytes": 100,
        "remote": True,
        "dsr": False,
    }
    third = body["connections"][2]
    assert (third["protocol"], third["service"], third["state"], third["remote"]) == (
        "udp",
        "dns",
        "udp",
        False,
    )


async def test_paging_oldest_first(client: httpx.AsyncClient) -> None:
    everything = await _get(client, "/api/v1/conntrack")
    assert _clients(everything) == [(c.client, c.sport) for c in CONNS]
    page1 = await _get(client, "/api/v1/conntrack", limit="2")
    page2 = await _get(client, "/api/v1/conntrack", limit="2", offset="2")
    assert _clients(page1) + _clients(page2) == _clients(everything)
    assert page1["total"] == page2["total"] == 3
    beyond = await _get(client, "/api/v1/conntrack", offset="10")
    assert (beyond["total"], beyond["connections"]) == (3, [])
    assert (await _get(client, "/api/v1/conntrack", limit="1000"))["limit"] == 1000


@pytest.mark.parametrize(
    ("params", "sports"),
    [
        ({"service": "web"}, [40001, 40002]),
        ({"service": "dns"}, [40003]),
        ({"client": "203.0.113.10"}, [40001, 40003]),
        ({"vip": "198.51.100.11"}, [40003]),
        ({"endpoint": "192.168.80.102"}, [40002]),
        ({"state": "established"}, [40001]),
        ({"state": "FIN-WAIT"}, [40002]),
        ({"remote": "1"}, [40001, 40002]),
        ({"remote": "false"}, [40003]),
        ({"client": "203.0.113.10", "service": "web"}, [40001]),
        ({"client": "203.0.113.99"}, []),
    ],
)
async def test_each_filter(
    client: httpx.AsyncClient, params: dict[str, str], sports: list[int]
) -> None:
    body = await _get(client, "/api/v1/conntrack", **params)
    assert [port for _client, port in _clients(body)] == sports
    assert body["total"] == len(sports)
    assert await _get(client, "/api/v1/conntrack", count="1", **params) == {"count": len(sports)}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": "1001"}, "limit must be an integer 0-1000"),
        ({"limit": "-1"}, "limit must be an integer 0-1000"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"offset": "1.5"}, "offset must be an integer"),
        ({"client": "nonsense"}, "client must be an IP address"),
        ({"vip": "2001:db8::1"}, "IPv4-only"),
        ({"endpoint": "192.168.80"}, "endpoint must be an IP address"),
        ({"state": "open"}, "state must be one of syn_sent, established"),
        ({"service": "nope"}, "service 'nope' is not in the dataplane (services: dns, web)"),
        ({"remote": "maybe"}, "remote must be true or false"),
        ({"count": "2"}, "count must be true or false"),
        ({"clinet": "203.0.113.10"}, "unknown parameter clinet"),
    ],
)
async def test_bad_values_are_400(
    client: httpx.AsyncClient, params: dict[str, str], says: str
) -> None:
    response = await client.get("/api/v1/conntrack", params=params)
    assert response.status_code == 400
    assert says in response.json()["error"]


async def test_not_running_then_withdrawn(rig: Rig, client: httpx.AsyncClient) -> None:
    reader = rig.store.get(DATAPLANE_CONNTRACK)
    assert isinstance(reader, LockedConntrack)
    await withdraw_conntrack(rig.store)
    response = await client.get("/api/v1/conntrack", params={"count": "1"})
    assert response.status_code == 404
    assert "dataplane is not running" in response.json()["error"]
    with pytest.raises(Exception, match="stopped"):
        reader.count()  # a reader fetched before the withdrawal no longer reads the maps
    rig.store.remove(DATAPLANE_STATUS)
    response = await client.get("/api/v1/services")
    assert response.status_code == 404
    assert "dataplane is not running" in response.json()["error"]


async def _run_cli(url: str, *args: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [sys.executable, "-m", "appliance", "show", "--node", url, *args],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_cli_against_the_served_app(rig: Rig) -> None:
    config = HypercornConfig()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.web.hypercorn")
    config.graceful_timeout = 0.5
    app = create_app(rig.store)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve, app, config)  # type: ignore[arg-type]
        url = urls[0]
        code, out, err = await _run_cli(url, "services")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("node n1: 3 connections; attached: eth0 (ingress), eth1")
        header = next(line for line in lines if line.startswith("service"))
        assert header.split() == [
            "service", "vip", "mode", "selection", "route", "id", "open", "conns", "packets",
            "bytes", "drops",
        ]  # fmt: skip
        row = next(line for line in lines if line.startswith("web "))
        assert row.split()[:8] == [
            "web", "198.51.100.10:80/tcp", "fullnat", "leastconn", "withdrawn", "(bgp", "not",
            "configured)",
        ]  # fmt: skip
        assert row.split()[9:13] == ["2", "2", "15", "1500"]
        ep2 = next(line for line in lines if "192.168.80.102:8080" in line)
        assert ep2.split() == [
            "192.168.80.102:8080", "1", "draining", "down", "1.5", "ms", "1", "0", "0", "0",
            "refused",
        ]  # fmt: skip

        code, out, err = await _run_cli(url, "conntrack", "--count")
        assert (code, out.strip()) == (0, "3"), err
        code, out, err = await _run_cli(url, "conntrack", "--service", "web", "--limit", "1")
        assert code == 0, err
        header, row, footer = out.splitlines()
        assert header.split()[:4] == ["proto", "client", "vip", "endpoint"]
        assert row.split()[:6] == [
            "tcp", "203.0.113.10:40001", "198.51.100.10:80", "192.168.80.101:8080",
            "198.51.100.10:41001", "established",
        ]  # fmt: skip
        assert row.split()[-2:] == ["web", "remote"]
        assert footer == "connections 1-1 of 2"
        code, out, err = await _run_cli(url, "--json", "conntrack", "--local")
        assert code == 0, err
        assert [c["client_port"] for c in json.loads(out)["connections"]] == [40003]

        code, out, err = await _run_cli(url, "conntrack", "--state", "bogus")
        assert code == 1 and out == ""
        assert "HTTP 400: state must be one of" in err
        code, out, err = await _run_cli(url, "conntrack", "--limit", "5000")
        assert code == 1 and "limit must be an integer 0-1000" in err
        nursery.cancel_scope.cancel()
    # nobody listening any more: a clear error, exit 1
    code, out, err = await _run_cli(url, "services")
    assert code == 1 and out == "" and err.startswith(f"triolb: {url}/api/v1/services: ")
