"""Endpoint health probes against the lab's real endpoint servers, run from node1's namespace.

Every probe and the health service run in a child process inside node1 (``ip netns exec``);
this test process only starts, stops and reads them. The lab's endpoints ep1..ep3
(192.168.80.101-103) serve HTTP on 8080 and echo on 9000 (TCP and UDP); 192.168.80.109 is an
unused address on the subnet (nobody answers its ARP).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from appliance.lab.api import LabHandle
from appliance.lab.procs import python_module_argv

pytestmark = pytest.mark.lab

EP1, EP2, EP3 = "192.168.80.101", "192.168.80.102", "192.168.80.103"
NOBODY = "192.168.80.109"
HTTPS_PORT = 8443

PROBE_SCRIPT = """
import ipaddress, json, sys, trio
from appliance.config.model import Probe, ProbeType
from appliance.health.probes import run_probe

async def main():
    out = {}
    for name, address, port, probe in json.loads(sys.stdin.read()):
        probe = Probe(**{**probe, "type": ProbeType(probe["type"])})
        result = await run_probe(ipaddress.ip_address(address), port, probe)
        out[name] = {"ok": result.ok, "error": result.error, "latency": result.latency}
    print(json.dumps(out))

trio.run(main)
"""

SERVICE_SCRIPT = """
import ipaddress, json, sys, trio
from appliance.config.model import (
    Config, Endpoint, Node, Probe, ProbeType, Protocol, Service)
from appliance.controller import ENDPOINT_HEALTH
from appliance.health import HealthService
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore

EPS = [ipaddress.ip_address(a) for a in sys.argv[1:]]
VIP = ipaddress.ip_address("192.168.80.200")

def service(name, port, probe, protocol=Protocol.TCP):
    eps = tuple(Endpoint(a, port) for a in EPS)
    return Service(name=name, vip=VIP, port=port, protocol=protocol, endpoints=eps, probe=probe)

timing = dict(interval_ms=200, timeout_ms=150, rise=2, fall=3)
config = Config(node=Node("node1", 1), services=(
    service("web", 8080, Probe(ProbeType.HTTP, expect_body="ep", **timing)),
    service("echo", 9000, Probe(ProbeType.TCP, **timing)),
    service("dns", 9000, Probe(ProbeType.UDP, send="hi", expect="hi", **timing), Protocol.UDP),
    service("ping", 9000, Probe(ProbeType.ICMP, **timing)),
))

async def main():
    store = StateStore()
    store.publish(RUNNING_CONFIG, config)
    svc = HealthService(store)
    with trio.move_on_after(120):
        async with trio.open_nursery() as nursery:
            await nursery.start(svc.run)
            print("ready", flush=True)
            last = None
            while True:  # one line per change of the published up/down map
                health = store.get(ENDPOINT_HEALTH)
                if health is not None and health is not last:
                    last = health
                    rows = {(r.service, r.address): r for r in svc.status()}
                    print(json.dumps({"health": [
                        {"service": s, "address": str(a), "up": up,
                         "successes": rows[(s, a)].successes,
                         "failures": rows[(s, a)].failures,
                         "error": rows[(s, a)].last_error}
                        for (s, a, _p), up in health.items()]}), flush=True)
                await store.wait_changed(store.version)

trio.run(main)
"""


def probe(kind: str, **options: Any) -> dict[str, Any]:
    return {"type": kind, "interval_ms": 2000, "timeout_ms": 500, **options}


def run_probes(handle: LabHandle, cases: list[list[Any]]) -> dict[str, dict[str, Any]]:
    result = handle.exec(
        "node1", [sys.executable, "-c", PROBE_SCRIPT], timeout=60, input=json.dumps(cases)
    )
    assert result.returncode == 0, result.stderr
    out: dict[str, dict[str, Any]] = json.loads(result.stdout)
    return out


def start_https_endpoint(handle: LabHandle) -> None:
    """A second endpoint server in ep3 with TLS on 8443 (a fresh self-signed certificate)."""
    cert, key = handle.log_dir / "ep3-cert.pem", handle.log_dir / "ep3-key.pem"
    handle.exec(
        "ep3",
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=ep3", "-keyout", str(key), "-out", str(cert)],
        timeout=60, check=True,
    )  # fmt: skip
    argv = python_module_argv(
        "appliance.lab.traffic.endpoint_server",
        "--name=ep3",
        "--duration=600",
        "--http-port=18080",
        "--echo-port=19000",
        f"--https-port={HTTPS_PORT}",
        f"--tls-cert={cert}",
        f"--tls-key={key}",
    )
    handle.spawn("ep3", "ep3-https", argv)
    handle.wait_for_log("ep3-https", "listening")


def test_each_probe_type_up_and_down(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario1")
    start_https_endpoint(handle)
    results = run_probes(
        handle,
        [
            ["icmp up", EP1, 0, probe("icmp")],
            ["icmp no host", NOBODY, 0, probe("icmp")],
            ["tcp up", EP1, 9000, probe("tcp")],
            ["tcp port override", EP1, 1, probe("tcp", port=8080)],
            ["tcp refused", EP1, 9555, probe("tcp")],
            ["tcp no host", NOBODY, 9000, probe("tcp")],
            ["udp expect", EP1, 9000, probe("udp", send="hello", expect="ell")],
            ["udp any reply", EP1, 9000, probe("udp", send="x")],
            ["udp mismatch", EP1, 9000, probe("udp", send="hello", expect="bye")],
            ["udp refused", EP1, 9555, probe("udp", send="hello")],
            ["udp no host", NOBODY, 9000, probe("udp", send="hello")],
            ["http up", EP1, 8080, probe("http", path="/health", expect_body="ep1")],
            ["http status", EP1, 8080, probe("http", expect_status=204)],
            ["http body", EP1, 8080, probe("http", expect_body="ep2")],
            ["http refused", EP1, 8081, probe("http")],
            ["http no host", NOBODY, 8080, probe("http")],
            ["https up", EP3, HTTPS_PORT, probe("https", expect_body="ep3")],
            ["https body", EP3, HTTPS_PORT, probe("https", expect_body="ep1")],
            ["https to an echo", EP1, 9000, probe("https")],  # our ClientHello comes back
            ["https to plain http", EP1, 8080, probe("https")],  # it waits for a request head
        ],
    )
    verdicts = {name: r["ok"] if r["ok"] else r["error"] for name, r in results.items()}
    assert verdicts == {
        "icmp up": True,
        "icmp no host": "timeout",
        "tcp up": True,
        "tcp port override": True,
        "tcp refused": "refused",
        "tcp no host": "timeout",
        "udp expect": True,
        "udp any reply": True,
        "udp mismatch": "reply mismatch",
        "udp refused": "refused",
        "udp no host": "timeout",
        "http up": True,
        "http status": "status 200",
        "http body": "body mismatch",
        "http refused": "refused",
        "http no host": "timeout",
        "https up": True,
        "https body": "body mismatch",
        "https to an echo": "tls error",
        "https to plain http": "timeout",
    }
    for name, r in results.items():
        assert 0 <= r["latency"] < 1.0, name  # bounded by timeout_ms (500 ms) + scheduling


def test_stopped_server_is_down_but_host_still_pings(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle = lab_factory("scenario1")
    handle.stop("ep2-server")
    results = run_probes(
        handle,
        [
            ["icmp", EP2, 0, probe("icmp")],
            ["tcp", EP2, 9000, probe("tcp")],
            ["udp", EP2, 9000, probe("udp", send="hello")],
            ["http", EP2, 8080, probe("http")],
            ["other endpoint", EP1, 8080, probe("http")],
        ],
    )
    verdicts = {name: r["ok"] if r["ok"] else r["error"] for name, r in results.items()}
    assert verdicts == {
        "icmp": True,
        "tcp": "refused",
        "udp": "refused",
        "http": "refused",
        "other endpoint": True,
    }


def health_lines(handle: LabHandle, name: str) -> list[list[dict[str, Any]]]:
    text = handle.log_path(name).read_text(errors="replace")
    return [json.loads(line)["health"] for line in text.splitlines() if line.startswith("{")]


def wait_health(
    handle: LabHandle,
    name: str,
    predicate: Callable[[dict[tuple[str, str], dict[str, Any]]], bool],
    timeout: float = 30,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Poll the service's log (bounded) until its latest health report satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    while time.monotonic() < deadline:
        lines = health_lines(handle, name)
        if lines:
            latest = {(r["service"], r["address"]): r for r in lines[-1]}
            if predicate(latest):
                return latest
        assert handle.alive(name), handle.log_tail(name, 40)
        time.sleep(0.1)
    raise AssertionError(f"health not reached in {timeout}s; last: {latest}")


SERVICES = ("web", "echo", "dns", "ping")
APP = ("web", "echo", "dns")  # the probes that fail when the endpoint server stops


def test_health_service_end_to_end(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario1")
    handle.spawn("node1", "health", [sys.executable, "-c", SERVICE_SCRIPT, EP1, EP2])
    handle.wait_for_log("health", "ready")

    def all_confirmed(h: dict[tuple[str, str], dict[str, Any]]) -> bool:
        return len(h) == 8 and all(r["up"] and r["successes"] >= 1 for r in h.values())

    # everything is up (initially unknown = up; confirmed by the first successes)
    wait_health(handle, "health", lambda h: len(h) == 8 and all(r["up"] for r in h.values()))

    handle.stop("ep2-server")
    down = wait_health(handle, "health", lambda h: all(not h[(s, EP2)]["up"] for s in APP))
    assert all(down[(s, EP1)]["up"] for s in SERVICES)
    assert down[("ping", EP2)]["up"]  # the host still answers ICMP
    assert {down[(s, EP2)]["error"] for s in APP} == {"refused"}

    argv = python_module_argv(
        "appliance.lab.traffic.endpoint_server", "--name=ep2", "--duration=600"
    )
    handle.spawn("ep2", "ep2-server-again", argv)
    handle.wait_for_log("ep2-server-again", "listening")
    up = wait_health(handle, "health", lambda h: all(h[(s, EP2)]["up"] for s in APP))
    for s in APP:
        assert up[(s, EP2)]["successes"] >= 2  # rise
    # the reports at the transitions: down at the `fall`-th failure, up at the `rise`-th success
    reports = health_lines(handle, "health")
    went_down = [
        r for rows in reports for r in rows if r["address"] == EP2 and not r["up"] and r["failures"]
    ]
    assert went_down and min(r["failures"] for r in went_down) == 3
    came_up = [
        r
        for i, rows in enumerate(reports[1:], 1)
        for r in rows
        if r["address"] == EP2
        and r["up"]
        and any(p["address"] == EP2 and p["service"] == r["service"] and not p["up"]
                for p in reports[i - 1])
    ]  # fmt: skip
    assert came_up and all(r["successes"] == 2 for r in came_up)
    assert all_confirmed(wait_health(handle, "health", all_confirmed))
    handle.stop("health")
