"""`bgp.kernel_routes` against a real kernel, inside a lab node's network namespace.

The sync code runs in node1's namespace (a Python snippet started with ``handle.exec``); the
test reads the result with ``ip route`` in the same namespace. Nothing touches the root one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from appliance.lab.api import LabHandle
from bgp.kernel_routes import METRIC, PROTO

pytestmark = pytest.mark.lab

SINGLE = "198.51.100.10/32"
MULTI = "198.51.100.0/24"
OTHER_PROTO = "198.51.100.20/32"
EP1, EP2 = "192.168.80.101", "192.168.80.102"

_SNIPPET = """
import json, sys
from ipaddress import ip_address, ip_network
from bgp import kernel_routes
desired = {
    ip_network(prefix): [ip_address(hop) for hop in hops]
    for prefix, hops in json.loads(sys.argv[1]).items()
}
changes = kernel_routes.sync_routes(desired)
print(json.dumps({
    name: [str(p) for p in getattr(changes, name)]
    for name in ("added", "replaced", "removed", "conflicts")
} | {"failed": [[str(p), why] for p, why in changes.failed]}))
"""

_FLUSH = "from bgp import kernel_routes; print(kernel_routes.flush())"


def sync(handle: LabHandle, desired: dict[str, list[str]]) -> dict[str, list[Any]]:
    argv = [sys.executable, "-c", _SNIPPET, json.dumps(desired)]
    result = handle.exec("node1", argv, timeout=30)
    assert result.returncode == 0, result.stderr
    changes: dict[str, list[Any]] = json.loads(result.stdout)
    return changes


def routes(handle: LabHandle) -> dict[str, dict[str, Any]]:
    """node1's IPv4 main-table routes by destination, protocol numbers left numeric."""
    result = handle.exec("node1", ["ip", "-N", "-j", "-4", "route", "show"], timeout=10)
    assert result.returncode == 0, result.stderr
    return {route["dst"]: route for route in json.loads(result.stdout)}


def gateways(route: dict[str, Any]) -> set[str]:
    if "nexthops" in route:
        return {hop["gateway"] for hop in route["nexthops"]}
    return {route["gateway"]}


def test_rib_routes_install_resync_and_remove(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario2", start_endpoints=False, start_router=False)
    other = ["ip", "route", "add", OTHER_PROTO, "via", EP1, "proto", "static"]
    handle.exec("node1", other, timeout=10, check=True)
    before = routes(handle)

    desired = {SINGLE: [EP1], MULTI: [EP1, EP2]}
    changes = sync(handle, desired)
    assert sorted(changes["added"]) == sorted([SINGLE, MULTI])
    assert changes["failed"] == [] and changes["conflicts"] == []
    now = routes(handle)
    single, multi = now[SINGLE.removesuffix("/32")], now[MULTI]
    for route in (single, multi):
        assert str(route["protocol"]) == str(PROTO)
        assert route["metric"] == METRIC
    assert gateways(single) == {EP1} and single["dev"] == "eth0"
    assert gateways(multi) == {EP1, EP2}
    assert {hop["dev"] for hop in multi["nexthops"]} == {"eth0"}

    # the same desired set again: nothing to do, nothing changed
    assert sync(handle, desired) == {
        "added": [],
        "replaced": [],
        "removed": [],
        "conflicts": [],
        "failed": [],
    }
    assert routes(handle) == now

    # the multipath route loses a next hop, the single one goes away
    changes = sync(handle, {MULTI: [EP2]})
    assert changes["replaced"] == [MULTI] and changes["removed"] == [SINGLE]
    now = routes(handle)
    assert SINGLE.removesuffix("/32") not in now
    assert gateways(now[MULTI]) == {EP2} and "nexthops" not in now[MULTI]

    # flush removes ours only; the static route and the connected ones are untouched
    flushed = handle.exec("node1", [sys.executable, "-c", _FLUSH], timeout=30)
    assert flushed.returncode == 0, flushed.stderr
    assert flushed.stdout.strip() == "1"
    after = routes(handle)
    assert after == before
    assert str(after[OTHER_PROTO.removesuffix("/32")]["protocol"]) != str(PROTO)


def test_rib_routes_leave_another_protocols_route_alone(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle = lab_factory("scenario2", start_endpoints=False, start_router=False)
    other = ["ip", "route", "add", SINGLE, "via", EP2, "proto", "static", "metric", str(METRIC)]
    handle.exec("node1", other, timeout=10, check=True)
    changes = sync(handle, {SINGLE: [EP1]})
    assert changes["conflicts"] == [SINGLE] and changes["added"] == []
    route = routes(handle)[SINGLE.removesuffix("/32")]
    assert gateways(route) == {EP2} and str(route["protocol"]) != str(PROTO)
    assert sync(handle, {})["removed"] == []
    assert SINGLE.removesuffix("/32") in routes(handle)
