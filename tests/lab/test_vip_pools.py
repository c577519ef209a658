"""VIP pools end to end (issue 6): "Pool allocation identical on two nodes started with the same
config, and stable across restarts and unrelated config changes."

Scenario 3 (active-active, BGP ECMP to BIRD, no HA): node1 and node2 run the daemon with the
example configs, except that every service takes its VIP from the pool ``lab-vips``
(198.51.100.0/24) instead of naming one. A node's allocation is read three ways that must
agree: the ``pool_allocation`` log event, the dataplane's services (``show --json services``)
and the saved ``state/<node>/pools.json``. BGP graceful restart is off in these configs, so a
stopped daemon's routes leave the router at once and a restarted one advertises anew.

One test walks the whole story on one lab (a lab and two eBPF compiles are the expensive part):
both nodes allocate the same distinct pool addresses and the router learns each from both
(ECMP); node1 restarted keeps them; a SIGHUP reload that adds a service and changes another's
endpoint weight keeps every existing address and gives the new service a fresh one (the same
on node2 after the same reload); a service removed and re-added gets its address back; a
restart keeps what the saved file says (shown by editing it while node1 is stopped); and a
client request to an allocated address is answered by an endpoint through node1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support import dataplane as dp
from tests.lab.support import nodes
from tests.lab.support import pools as vp
from tests.lab.support.polling import wait_for

pytestmark = pytest.mark.lab

BOTH = {nodes.NODE1, nodes.NODE2}
SERVICES = [
    vp.pool_service("web", 80, endpoint_port=dp.HTTP_PORT),
    vp.pool_service("api", 8080, endpoint_port=dp.HTTP_PORT),
    vp.pool_service("echo", dp.ECHO_PORT),
    vp.pool_service("echo-udp", dp.ECHO_PORT, protocol="udp"),
]
NAMES = [str(s["name"]) for s in SERVICES]
#: the unrelated change: a new pool service, and another endpoint weight for ``echo``
CHANGED = [
    *[s for s in SERVICES if s["name"] != "echo"],
    vp.pool_service("echo", dp.ECHO_PORT, weights={"ep1": 3}),
    vp.pool_service("metrics", 9100, endpoint_port=dp.HTTP_PORT),
]
CHANGED_NAMES = [*NAMES, "metrics"]


def routes(allocation: vp.Allocation, hops: set[str]) -> dict[str, set[str]]:
    return {f"{address}/32": set(hops) for address in allocation.values()}


def test_pool_allocation_is_identical_on_both_nodes_and_stable(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario3")
    daemons = {
        node: vp.Daemon(handle, node, vp.write_node_config(tmp_path, node, SERVICES))
        for node in ("node1", "node2")
    }
    node1, node2 = daemons["node1"], daemons["node2"]
    for daemon in daemons.values():
        daemon.spawn()
    for daemon in daemons.values():
        daemon.wait_ready()

    # identical on two nodes started with the same config; every address advertised by both
    first = node1.allocation(NAMES)
    vp.assert_well_formed(first, NAMES)
    assert node2.allocation(NAMES) == first
    vp.wait_bird_routes(handle, routes(first, BOTH))

    # stable across a restart: node1's routes go, then come back with the same addresses
    node1.stop()
    vp.wait_bird_routes(handle, routes(first, {nodes.NODE2}))
    node1.spawn()
    node1.wait_ready()
    assert node1.allocation(NAMES) == first
    vp.wait_bird_routes(handle, routes(first, BOTH))

    # stable across an unrelated change (SIGHUP): existing addresses kept, the new service gets
    # a fresh one of its own, and node2 after the same change agrees
    node1.reload(CHANGED)
    changed = node1.allocation(CHANGED_NAMES)
    vp.assert_well_formed(changed, CHANGED_NAMES)
    assert {name: changed[name] for name in NAMES} == first
    assert changed["metrics"] not in first.values()
    weights = {
        e["address"]: e["weight"]
        for s in node1.services_json()
        if s["name"] == "echo"
        for e in s["endpoints"]
    }
    assert weights == {dp.EP_ADDRESSES["ep1"]: 3, **{dp.EP_ADDRESSES[e]: 1 for e in ("ep2", "ep3")}}
    node2.reload(CHANGED)
    assert node2.allocation(CHANGED_NAMES) == changed
    vp.wait_bird_routes(handle, routes(changed, BOTH))

    # a service removed gives its address up (node1 withdraws it); re-added, it gets it back
    without_api = [s for s in CHANGED if s["name"] != "api"]
    node1.reload(without_api)
    rest = [n for n in CHANGED_NAMES if n != "api"]
    assert node1.allocation(rest) == {n: changed[n] for n in rest}
    expected = routes(changed, BOTH)
    expected[f"{changed['api']}/32"] = {nodes.NODE2}
    vp.wait_bird_routes(handle, expected)
    node1.reload(CHANGED)
    assert node1.allocation(CHANGED_NAMES) == changed
    vp.wait_bird_routes(handle, routes(changed, BOTH))

    # the saved file is what a restart keeps (not a recomputation): node1 stopped, its file
    # says metrics has another free address, and the restarted node1 keeps that one
    node1.stop()
    moved = next(str(a) for a in vp.POOL_CIDR.hosts() if str(a) not in changed.values())
    node1.save_allocation({**changed, "metrics": moved})
    node1.spawn()
    node1.wait_ready()
    assert node1.allocation(CHANGED_NAMES) == {**changed, "metrics": moved}
    expected = routes(changed, BOTH)
    expected[f"{changed['metrics']}/32"] = {nodes.NODE2}
    expected[f"{moved}/32"] = {nodes.NODE1}
    vp.wait_bird_routes(handle, expected)

    # traffic: with node2 stopped the router sends the client's flows to node1 only (default
    # mode keeps its NAT state on the node that took the flow, so the endpoints' replies must
    # go back through that same node)
    node2.stop()
    vp.wait_bird_routes(handle, routes({**changed, "metrics": moved}, {nodes.NODE1}))
    web = changed["web"]
    wait_for(
        lambda: nodes.route_gateways(nodes.router_kernel_route(handle, web)) == {nodes.NODE1},
        f"the router's kernel route for {web} via node1 only",
        vp.WAIT_S,
        lambda: repr(nodes.router_kernel_route(handle, web)),
    )
    for ep in dp.ENDPOINTS:
        dp.sh(handle, ep, "ip", "route", "replace", dp.CLIENT_NET, "via", nodes.NODE1)
    results = dp.http_gets(handle, web, 80, 6)
    assert not dp.failures(results), dp.failures(results)
    assert set(dp.names(results)) <= set(dp.ENDPOINTS), results
    assert {r["peer"] for r in results} == {f"{web}:80"}
