"""GET /metrics from a real daemon (issue 9): scenario 3's node1 (eBPF dataplane, BGP speaker,
health probes) with the lab router's real BIRD and the endpoint servers.

Scraped from inside node1's namespace at http://127.0.0.1:8080/metrics (the example's
``web.listen``) and read back with prometheus_client's parser: the BGP session to the router is
established, each service and endpoint has series, the probed endpoints are up, the packet
counters move once the client sent requests through the VIP, and the loop-lag series exists.
node2 runs no daemon: the router's only path to the VIP is node1.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance.lab.api import LabHandle
from tests.lab.support import dataplane as dp
from tests.lab.support.polling import wait_for

pytestmark = pytest.mark.lab

EXAMPLE = dp.EXAMPLES / "scenario3-bgp-ecmp-node1.yaml"
ROUTER = "192.168.80.254"
URL = "http://127.0.0.1:8080/metrics"
SCRAPE = (
    "import sys, httpx\n"
    f"response = httpx.get({URL!r}, timeout=5.0)\n"
    "response.raise_for_status()\n"
    "sys.stdout.write(response.text)\n"
)
SERVICES = {"web": 8080, "echo": dp.ECHO_PORT}  # service -> its endpoints' port
REQUESTS = 20
#: BIRD's connect retry, then OPEN/KEEPALIVE (as in test_service_health)
SESSION_UP_S = 40.0
#: the dataplane republishes its status (counters) every 2 s; probes run every second
REFRESH_S = 15.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(handle: LabHandle) -> Samples:
    """node1's /metrics, scraped inside its namespace, as {(sample name, labels): value}."""
    result = handle.exec("node1", [sys.executable, "-c", SCRAPE], timeout=20)
    assert result.returncode == 0, result.stderr
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(result.stdout)
        for s in family.samples
    }


def series(samples: Samples, name: str, **labels: str) -> list[float]:
    """The values of every `name` sample whose labels include `labels`."""
    wanted = set(labels.items())
    return [v for (n, ls), v in samples.items() if n == name and wanted <= ls]


def endpoints(service: str) -> dict[str, dict[str, str]]:
    """The labels of each endpoint (by name: ep1...) of `service` in the scenario 3 example."""
    port = SERVICES[service]
    return {
        name: {"service": service, "endpoint": f"{address}:{port}"}
        for name, address in dp.EP_ADDRESSES.items()
    }


def wait_metrics(
    handle: LabHandle, ok: Callable[[Samples], bool], what: str, timeout: float = REFRESH_S
) -> Samples:
    """Scrape until `ok` holds for the samples (at most `timeout` seconds); return them."""
    last: list[Samples] = [{}]

    def probe() -> Samples | None:
        last[0] = scrape(handle)
        return last[0] if ok(last[0]) else None

    def describe() -> str:
        return "\n".join(f"{n} {dict(ls)} {v}" for (n, ls), v in sorted(last[0].items()))

    return wait_for(probe, what, timeout, describe, interval=0.5)


def session_up(samples: Samples) -> bool:
    return series(samples, "triolb_bgp_session_established", neighbor=ROUTER) == [1.0]


def all_endpoints_up(samples: Samples) -> bool:
    """Every endpoint's probe verdict is "up" (not merely "unknown, counted up")."""
    labels = [ep for service in SERVICES for ep in endpoints(service).values()]
    return all(
        series(samples, "triolb_endpoint_health", **ep, health="up") == [1.0] for ep in labels
    )


def web_counted(samples: Samples) -> bool:
    """The dataplane's published status counts every request as a new connection of web's (a
    status published while the requests ran may count only some)."""
    return sum(series(samples, "triolb_lb_service_connections_total", service="web")) >= REQUESTS


def router_has_kernel_route(handle: LabHandle) -> bool:
    """BIRD exported the VIP route into the router's kernel (it forwards by that table)."""
    return dp.NODE1 in dp.sh(handle, "router", "ip", "route", "show", f"{dp.L3_VIP}/32")


def test_metrics_of_a_running_node(lab_factory: Callable[..., LabHandle], tmp_path: Path) -> None:
    handle = lab_factory("scenario3", start_endpoints=True)
    dp.start_daemon(handle, Path(shutil.copy(EXAMPLE, tmp_path / "node1.yaml")))

    samples = wait_metrics(handle, session_up, "the BGP session to the router", SESSION_UP_S)
    assert series(samples, "triolb_bgp_session_state", neighbor=ROUTER, state="Established") == [1]
    assert series(samples, "triolb_bgp_session_establishments_total", neighbor=ROUTER) == [1]
    assert series(samples, "triolb_config_generation") == [1]
    assert series(samples, "triolb_service_up", service="dataplane") == [1]
    assert series(samples, "triolb_service_up", service="bgp") == [1]
    assert len(series(samples, "triolb_event_loop_lag_seconds")) == 3
    assert len(series(samples, "triolb_conntrack_entries")) == 1
    # no HA and no conntrack sync in scenario 3: no series rather than zeros
    assert not [n for n, _ in samples if n.startswith(("triolb_ha_", "triolb_sync_"))]

    samples = wait_metrics(handle, all_endpoints_up, "every endpoint probed up")
    for service in SERVICES:
        assert len(series(samples, "triolb_lb_service_packets_total", service=service)) == 1
        for ep in endpoints(service).values():
            assert series(samples, "triolb_endpoint_up", **ep) == [1]
            assert len(series(samples, "triolb_endpoint_packets_total", **ep)) == 1
            assert len(series(samples, "triolb_endpoint_probe_latency_seconds", **ep)) == 1

    wait_for(lambda: router_has_kernel_route(handle), "the VIP route in the router's kernel")
    results = dp.http_gets(handle, dp.L3_VIP, 80, REQUESTS)
    assert not dp.failures(results), dp.failures(results)
    samples = wait_metrics(handle, web_counted, f"web's {REQUESTS} connections counted")
    assert series(samples, "triolb_lb_service_packets_total", service="web")[0] > 0
    assert series(samples, "triolb_lb_service_bytes_total", service="web")[0] > 0
    answered = dp.names(results)
    for name, ep in endpoints("web").items():
        # an endpoint that answered requests has forwarded packets, one that did not has none
        packets = series(samples, "triolb_endpoint_packets_total", **ep)[0]
        assert (packets > 0) == (answered[name] > 0), (name, packets, answered)
    advertised = series(samples, "triolb_bgp_prefixes_advertised", neighbor=ROUTER)
    assert advertised == [1], advertised
