"""Endpoint health drives what node1 advertises and where its dataplane sends (issue 6), end to
end: scenario 3's lab, node1's real daemon (eBPF dataplane, BGP speaker, health probes) and the
lab router's real BIRD.

* Route health injection: the VIP 198.51.100.10/32 is advertised while at least one endpoint of
  its services is healthy. With every endpoint server stopped the route disappears at BIRD
  (the BGP session stays up: a withdrawal, not a lost peer) and from the daemon's own
  ``show bgp routes --advertised``; one endpoint server back and the route returns.
* The dataplane follows health: HTTP requests from the client (203.0.113.10) reach the VIP
  through the router by the BGP route; once ep2's server stops, new requests all succeed and
  none lands on ep2; once it is back, ep2 answers again.

node1 runs examples/scenario3-bgp-ecmp-node1.yaml with fast probes (``PROBE_TIMING``); node2
runs no daemon, so the router's only path to the VIP is via node1 (192.168.80.252).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.api import LabHandle
from appliance.lab.procs import python_module_argv
from tests.lab.support import dataplane as dp
from tests.lab.support.bird_configs import parse_routes, routes_via
from tests.lab.support.polling import wait_for

pytestmark = pytest.mark.lab

EXAMPLE = dp.EXAMPLES / "scenario3-bgp-ecmp-node1.yaml"
PREFIX = f"{dp.L3_VIP}/32"
WEB_PORT = 80
BATCH = 30  # HTTP requests per batch
PROBE_TIMING = {"interval_ms": 200, "timeout_ms": 150, "rise": 2, "fall": 2}
#: the session to BIRD and the first route: BIRD's connect retry, OPEN/KEEPALIVE, an UPDATE
ROUTE_UP_S = 40.0
#: a health change seen by BIRD or the dataplane: fall (or rise) x interval + timeout (2 x 0.2 +
#: 0.15 s) until the probe verdict, then the intent reconcile (maps, or an UPDATE to BIRD);
#: well under a second when idle, generously bounded for a busy 2-core machine
HEALTH_CHANGE_S = 15.0


def write_config(path: Path) -> Path:
    """Scenario 3's node1 example with ``PROBE_TIMING`` on every service's probe."""
    tree: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    assert {s["vip"] for s in tree["services"]} == {dp.L3_VIP}
    for service in tree["services"]:
        service["probe"] = {**service["probe"], **PROBE_TIMING}
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def start_node1(lab_factory: Callable[..., LabHandle], tmp_path: Path) -> LabHandle:
    """Scenario 3 with its endpoint servers, node1's daemon ready and its VIP route at BIRD."""
    handle = lab_factory("scenario3", start_endpoints=True)
    dp.start_daemon(handle, write_config(tmp_path / "node1.yaml"))
    wait_route_at_bird(handle, present=True, timeout=ROUTE_UP_S)
    return handle


def restart_endpoint(handle: LabHandle, ep: str) -> None:
    """Bring ``ep``'s endpoint server back (a new process: the stopped one's log is kept)."""
    argv = python_module_argv(
        "appliance.lab.traffic.endpoint_server",
        f"--name={ep}",
        f"--http-port={dp.HTTP_PORT}",
        f"--echo-port={dp.ECHO_PORT}",
        "--duration=600",
    )
    handle.spawn(ep, f"{ep}-server-again", argv)
    handle.wait_for_log(f"{ep}-server-again", "listening")


# --- route health injection --------------------------------------------------------------------


def bird_routes(handle: LabHandle) -> str:
    """BIRD's ``show route <VIP>/32 all``; "" when it has no such route."""
    try:
        return handle.birdc(f"show route {PREFIX} all")
    except RuntimeError as exc:  # "Network not found" makes birdc exit non-zero
        if "Network not found" in str(exc):
            return ""
        raise


def wait_route_at_bird(handle: LabHandle, *, present: bool, timeout: float) -> None:
    """Poll BIRD until it has (``present``) or lacks the VIP route via node1."""

    def reached() -> bool:
        found = [r for r in parse_routes(bird_routes(handle)) if r.prefix == PREFIX]
        return bool(routes_via(found, dp.NODE1)) if present else not found

    state = "present" if present else "gone"
    wait_for(
        reached, f"{PREFIX} via {dp.NODE1} {state} at BIRD", timeout, lambda: bird_routes(handle)
    )


def advertised(handle: LabHandle) -> list[str]:
    """The prefixes node1's daemon says it advertises (``show --json bgp routes --advertised``)."""
    argv = [sys.executable, "-m", "appliance", "show", "--json", "bgp", "routes", "--advertised"]
    result = handle.exec("node1", argv, timeout=20)
    assert result.returncode == 0, result.stderr
    return [str(r["prefix"]) for r in json.loads(result.stdout)["routes"]]


def session_established(handle: LabHandle) -> bool:
    """BIRD's session with node1 is up."""
    text = handle.birdc("show protocols all node1")
    return re.search(r"^\s*BGP state:\s+Established$", text, re.M) is not None


def test_route_follows_endpoint_health(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = start_node1(lab_factory, tmp_path)
    assert advertised(handle) == [PREFIX]

    for ep in dp.ENDPOINTS:
        handle.stop(f"{ep}-server")
    wait_route_at_bird(handle, present=False, timeout=HEALTH_CHANGE_S)
    # withdrawn for health: the session is up, and the daemon itself no longer advertises it
    assert session_established(handle), handle.birdc("show protocols all node1")
    assert advertised(handle) == []

    restart_endpoint(handle, "ep2")
    wait_route_at_bird(handle, present=True, timeout=HEALTH_CHANGE_S)
    assert advertised(handle) == [PREFIX]
    assert session_established(handle)


# --- the dataplane follows health --------------------------------------------------------------


def router_has_kernel_route(handle: LabHandle) -> bool:
    """BIRD exported the VIP route into the router's kernel (it forwards by that table)."""
    return dp.NODE1 in dp.sh(handle, "router", "ip", "route", "show", PREFIX)


def test_dataplane_follows_endpoint_health(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    # the example's one-arm mode sources each flow from node1's address: the endpoints answer
    # node1 directly, with no return route to the client subnet
    handle = start_node1(lab_factory, tmp_path)
    wait_for(lambda: router_has_kernel_route(handle), "the VIP route in the router's kernel")

    last: list[list[dict[str, Any]]] = [[]]

    def batch() -> list[dict[str, Any]]:
        last[0] = dp.http_gets(handle, dp.L3_VIP, WEB_PORT, BATCH)
        return last[0]

    def describe() -> str:
        return f"last batch: failures {dp.failures(last[0])}, answered by {dp.names(last[0])}"

    # all three healthy: maglev spreads 30 new flows over all of them
    results = batch()
    assert not dp.failures(results), dp.failures(results)
    assert set(dp.names(results)) == set(dp.ENDPOINTS), dp.names(results)

    handle.stop("ep2-server")

    def without_ep2() -> list[dict[str, Any]] | None:
        results = batch()
        ok = not dp.failures(results) and "ep2" not in dp.names(results)
        return results if ok else None

    # bound: fall x interval + timeout (0.55 s) until ep2 is down, then the reconcile
    results = wait_for(without_ep2, "a batch all answered, none by ep2", HEALTH_CHANGE_S, describe)
    assert set(dp.names(results)) == {"ep1", "ep3"}, dp.names(results)

    restart_endpoint(handle, "ep2")

    def with_ep2() -> list[dict[str, Any]] | None:
        results = batch()
        return results if not dp.failures(results) and "ep2" in dp.names(results) else None

    # bound: rise x interval + timeout (0.55 s) until ep2 is up, then the reconcile
    results = wait_for(with_ep2, "ep2 answering again", HEALTH_CHANGE_S, describe)
    assert set(dp.names(results)) == set(dp.ENDPOINTS), dp.names(results)
