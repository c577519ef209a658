"""Scenario 3 end to end: L3 active-active with BGP ECMP (BIRD 2 as the router).

Both daemons run examples/scenario3-bgp-ecmp-node{1,2}.yaml as shipped (secrets made absolute;
no timing changed: BGP hold time 9 s; no HA). Both advertise the VIP 198.51.100.10 with the
same attributes; BIRD keeps both routes and its kernel protocol merges them into one multipath
route in the router's kernel (L4 hashing), so the client's flows, from many source ports, are
spread over both nodes. Services are one-arm (SNAT to the node's address): each reply returns
to the node that took the flow.

1. BIRD has the VIP from both nodes with equal attributes, the router's kernel route has both
   nodes as next hops, and 60 flows (60 source ports) all succeed and reach both nodes (each
   daemon's ``web`` packet counter from ``show --json services`` moved).
2. node1's link goes down: once BIRD's hold timer for node1 expires, BIRD has node2's route
   only and the kernel route a single next hop; 60 new flows all succeed, through node2 only.

A request loop runs through the failure; its failures and error windows, and when BIRD dropped
node1's route (polled), are printed as ``FIGURE`` lines (``-s``), never asserted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support import ctsync as cs
from tests.lab.support import dataplane as dp
from tests.lab.support import polling
from tests.lab.support import scenarios_e2e as se

pytestmark = pytest.mark.lab

URL = f"http://{se.L3_VIP}:{se.WEB_PORT}/"
FLOWS = 60
FIRST_PORTS = list(range(41000, 41000 + FLOWS))
LATER_PORTS = list(range(42000, 42000 + FLOWS))
#: the request loop through the failure: BIRD notices a cut link after its hold time (9 s)
LOOP_S = 20.0
BOTH = {se.NODE_ADDRESSES["node1"], se.NODE_ADDRESSES["node2"]}


def describe(handle: LabHandle) -> str:
    return f"{cs.describe_bird(handle)}\nkernel: {se.router_gateways(handle)}"


def web_packets(handle: LabHandle, nodes: tuple[str, ...] = se.NODES) -> dict[str, int]:
    return {node: cs.service_packets(handle, node, "web") for node in nodes}


def flows(handle: LabHandle, ports: list[int]) -> dict[str, int]:
    """One request per source port, all answered; the packets each node's dataplane counted
    for the ``web`` service meanwhile (a bounded poll: the counters are published every 2 s,
    so it waits until the totals stop moving)."""
    before = web_packets(handle)
    results = dp.http_gets(handle, se.L3_VIP, se.WEB_PORT, len(ports), sports=ports)
    assert not dp.failures(results), dp.failures(results)[:5]
    assert set(dp.names(results)) == set(dp.ENDPOINTS), dp.names(results)
    last: list[dict[str, int]] = []

    def settled() -> dict[str, int] | None:
        now = {n: v - before[n] for n, v in web_packets(handle).items()}
        done = bool(last) and now == last[-1] and sum(now.values()) >= len(ports)
        last.append(now)
        return now if done else None

    return polling.wait_for(settled, "the web packet counters to settle", 20.0, interval=2.5)


def test_ecmp_spreads_flows_and_survives_a_node(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario3")
    configs = {n: se.example_config(tmp_path, se.SCENARIO3, n) for n in se.NODES}
    se.start_daemons(handle, configs)
    attrs = {n: se.advertised(configs[n], "active") for n in se.NODES}
    assert attrs["node1"] == attrs["node2"], attrs
    med, path = attrs["node1"]
    polling.wait_for(
        lambda: (
            {n: r[:2] for n, r in se.routes_by_node(handle).items()}
            == {"node1": (med, path), "node2": (med, path)}
        ),
        f"BIRD's VIP routes from both nodes with MED {med}, AS path {path}",
        se.FAILOVER_S,
        lambda: describe(handle),
    )
    polling.wait_for(
        lambda: se.router_gateways(handle) == BOTH,
        "the router's multipath kernel route via both nodes",
        se.WAIT_S,
        lambda: describe(handle),
    )
    print(f"BIRD at the start:\n{describe(handle)}")
    polling.wait_for(
        lambda: not dp.failures(dp.http_gets(handle, se.L3_VIP, se.WEB_PORT, 6)),
        "the endpoints to be up (probes) and requests answered",
        30.0,
    )
    spread = flows(handle, FIRST_PORTS)
    print(f"FIGURE scenario3 web packets per node for {FLOWS} flows: {spread}")
    assert all(spread[n] > 0 for n in se.NODES), f"flows did not reach both nodes: {spread}"

    loop = se.HttpLoop(handle, "loop-cut", URL, LOOP_S)
    polling.holds_for(lambda: handle.alive("loop-cut"), "loop-cut running", 1.0)
    broken_at = time.time()
    cs.link(handle, "node1", "down")
    _, single_at = se.timed(
        "BIRD to keep node2's route only",
        lambda: set(se.routes_by_node(handle)) == {"node2"},
        se.FAILOVER_S,
        lambda: describe(handle),
    )
    _, kernel_at = se.timed(
        "the router's kernel route via node2 only",
        lambda: se.router_gateways(handle) == {se.NODE_ADDRESSES["node2"]},
        se.WAIT_S,
        lambda: describe(handle),
    )
    print(f"BIRD after node1's link went down:\n{describe(handle)}")
    report = loop.report()
    se.figure("scenario3 cut: BIRD single path (hold time, poll)", single_at - broken_at)
    se.figure("scenario3 cut: router kernel single path (poll)", kernel_at - broken_at)
    se.outage(report, "scenario3 cut requests", broken_at)

    spread = flows(handle, LATER_PORTS)
    print(f"FIGURE scenario3 web packets per node for {FLOWS} flows after the cut: {spread}")
    assert spread["node1"] == 0 and spread["node2"] > 0, spread
