"""Scenario 1 end to end: flat L2, active-backup, one-arm services.

Both daemons run examples/scenario1-l2-node{1,2}.yaml as shipped (secrets made absolute; no
timing changed: adverts every 100 ms, preempt on, eth0 tracked). The client (192.168.80.10)
sends HTTP requests to the VIP 192.168.80.200:80 (the ``web`` service, one-arm, round robin
over the endpoints' HTTP on 8080).

1. node1 (priority 150) is active: it alone holds the VIP, the client's neighbour entry for the
   VIP is node1's MAC, and the requests spread over the three endpoints.
2. node1's link goes down: node2 takes the VIP, the client's neighbour entry moves to node2's
   MAC (gratuitous ARP), requests are answered again through node2.
3. node1's link comes back: node1 preempts; after it settles exactly one node (node1) holds the
   VIP at every poll, the roles are node1 active / node2 backup, node1 became master once, the
   neighbour entry is node1's MAC again, and requests succeed.

A request loop runs in the client through each switch; its error windows (the failover gaps)
and the times of the HA transitions are printed as ``FIGURE`` lines (``-s``), never asserted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support import ctsync as cs
from tests.lab.support import dataplane as dp
from tests.lab.support import ha, polling
from tests.lab.support import scenarios_e2e as se

pytestmark = pytest.mark.lab

URL = f"http://{ha.VIP}:{se.WEB_PORT}/"
#: requests per check: three rounds of the round robin
BATCH = 9
#: the request loop through one switch: the switch itself takes well under a second here
LOOP_S = 8.0
#: each loop request's timeout: short, so a failed request bounds the gap closely
LOOP_TIMEOUT_S = 0.3
#: one node holds the VIP at every poll for this long once the return has settled
SETTLED_S = 3.0


def served_by_all(handle: LabHandle) -> Counter[str] | None:
    """A batch of requests to the VIP, all answered, by all three endpoints; None otherwise."""
    results = dp.http_gets(handle, ha.VIP, se.WEB_PORT, BATCH)
    spread = dp.names(results)
    return spread if not dp.failures(results) and set(spread) == set(dp.ENDPOINTS) else None


def wait_served(handle: LabHandle, what: str) -> None:
    """Bounded retries until a whole batch is answered by all three endpoints (the probes
    mark the endpoints up within their rise interval); prints the spread."""
    spread = polling.wait_for(lambda: served_by_all(handle), f"requests served {what}", 30.0)
    print(f"requests {what}: {dict(spread)}")


def start(lab_factory: Callable[..., LabHandle], tmp_path: Path) -> LabHandle:
    handle = lab_factory("scenario1")
    configs = {node: se.example_config(tmp_path, se.SCENARIO1, node) for node in se.NODES}
    se.start_daemons(handle, configs)
    ha.wait_until("node1 to become the one VIP holder", lambda: ha.active(handle, "node1"))
    ha.client_reaches(handle, "node1")
    return handle


def start_loop(handle: LabHandle, name: str) -> se.HttpLoop:
    """A request loop, seen running for a moment before the test breaks something."""
    loop = se.HttpLoop(handle, name, URL, LOOP_S, timeout=LOOP_TIMEOUT_S)
    polling.holds_for(lambda: handle.alive(name), f"{name} running", 1.0)
    return loop


def test_l2_failover_and_preemptive_return(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = start(lab_factory, tmp_path)
    macs = {node: ha.mac(handle, node) for node in se.NODES}
    wait_served(handle, "through node1")

    # node1's link goes down: node2 owns the VIP, the client's neighbour entry follows
    loop = start_loop(handle, "loop-failover")
    broken_at = time.time()
    cs.link(handle, "node1", "down")
    _, vip_moved = se.timed(
        "node2 to be the one VIP holder", lambda: ha.vip_holders(handle) == ["node2"]
    )
    _, neighbour_moved = se.timed(
        "the client's neighbour entry for the VIP to be node2's MAC",
        lambda: ha.client_neighbour_mac(handle) == macs["node2"],
    )
    report = loop.report()
    (master,) = se.ha_changes(handle, "node2", "master", broken_at)
    se.figure("scenario1 failover: node2 master after link down", master - broken_at)
    se.figure("scenario1 failover: VIP seen on node2 (poll)", vip_moved - broken_at)
    se.figure("scenario1 failover: client neighbour on node2 (poll)", neighbour_moved - broken_at)
    se.outage(report, "scenario1 failover requests", broken_at)
    assert report["ok"] > 0, report
    assert ha.roles(handle, ["node2"]) == {"node2": "active"}
    ha.client_reaches(handle, "node2")
    wait_served(handle, "through node2")

    # node1's link comes back: it preempts, cleanly
    loop = start_loop(handle, "loop-return")
    back_at = time.time()
    cs.link(handle, "node1", "up")
    _, returned = se.timed(
        "node1 to be the one VIP holder again",
        lambda: ha.active(handle, "node1"),
        ha.WAIT_S,
        lambda: f"holders {ha.vip_holders(handle)}",
    )
    ha.holds_for(
        "exactly one VIP holder, node1", lambda: ha.vip_holders(handle) == ["node1"], SETTLED_S
    )
    assert ha.roles(handle, se.NODES) == {"node1": "active", "node2": "backup"}
    masters = se.ha_changes(handle, "node1", "master", back_at)
    assert len(masters) == 1, f"node1 became master {len(masters)} times: {masters}"
    (yielded,) = se.ha_changes(handle, "node2", "backup", back_at)
    ha.client_reaches(handle, "node1")
    report = loop.report()
    se.figure("scenario1 return: node1 master after link up", masters[0] - back_at)
    se.figure("scenario1 return: node2 backup after link up", yielded - back_at)
    se.figure("scenario1 return: VIP seen only on node1 (poll)", returned - back_at)
    se.outage(report, "scenario1 return requests", back_at)
    assert report["ok"] > 0, report
    assert ha.client_neighbour_mac(handle) == macs["node1"]
    wait_served(handle, "through node1 again")
