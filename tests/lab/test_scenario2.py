"""Scenario 2 end to end: L3 active-backup with BGP (BIRD 2 as the router).

Both daemons run examples/scenario2-bgp-active-backup-node{1,2}.yaml as shipped (secrets made
absolute; no timing changed: HA adverts every second, BGP hold time 9 s, graceful restart off).
The client (203.0.113.10) sends HTTP requests through the router to the VIP 198.51.100.10:80.

The examples' services are in default mode (DNAT only): the endpoints see the client's own
address and answer it through their gateway, the router, which would hand the reply straight to
the client with the endpoint's address as source (the client resets it). So the reply must go
through the node that holds the flow's NAT state, the active one. The lab does not arrange that
(``dataplane.route_default_mode`` only routes the replies via node1, statically, which breaks on
the first failover); these tests make the router send the endpoints' replies for the client
subnet to whichever node its best BGP path for the VIP goes to (``scenarios_e2e.
route_replies_by_bgp``: a BIRD static route with the VIP as recursive next hop, exported into a
kernel table selected by a rule for the endpoints' addresses). The return path then follows the
failover with no help from the test.

Set-up: node1 (priority 150) is active and BIRD's best path for the VIP goes via node1 with the
active attributes of the example (``advertise.active``: MED 10, no prepend); node2's backup
route has the backup ones (MED 20, three prepends); requests spread over the three endpoints.

- case A: node1's daemon is SIGKILLed and its programs removed (``dataplane flush``) → the best
  path moves to node2, which is active and advertises with the active attributes; requests are
  served again. The flush also releases node1's VIP address (on ``lo``): no longer the known
  gap of earlier issues, and checked here.
- case B (a fresh lab): node1's link goes down → the same, once BIRD's hold timer for node1's
  session expires.

Figures (``-s``, ``FIGURE`` lines, never asserted): when node2 became master, when BIRD's best
path moved (polled), the error windows and failed requests of a request loop run through the
switch.
"""

from __future__ import annotations

import os
import signal
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
BATCH = 9
#: request loops through a switch: a kill is seen at once (the session closes), a cut link
#: after BIRD's hold time (9 s)
KILL_LOOP_S = 12.0
CUT_LOOP_S = 20.0


class Pair:
    """The scenario-2 lab with both daemons running, node1 active and preferred."""

    def __init__(self, lab_factory: Callable[..., LabHandle], tmp_path: Path) -> None:
        self.handle = lab_factory("scenario2")
        se.route_replies_by_bgp(self.handle)
        self.configs = {n: se.example_config(tmp_path, se.SCENARIO2, n) for n in se.NODES}
        self.pids = se.start_daemons(self.handle, self.configs, share_mounts=True)
        self.wait_roles({"node1": "active", "node2": "backup"})
        self.wait_best("node1")
        med, path = se.advertised(self.configs["node2"], "backup")
        polling.wait_for(
            lambda: (
                se.routes_by_node(self.handle).get("node2", (None, [], True))[:2] == (med, path)
            ),
            f"node2's backup route at BIRD (MED {med}, AS path {path})",
            se.WAIT_S,
            self.describe,
        )
        self.wait_return("node1")
        print(f"BIRD at the start:\n{self.describe()}")
        self.wait_served("through node1")

    def describe(self) -> str:
        return cs.describe_bird(self.handle)

    def wait_roles(self, expected: dict[str, str]) -> None:
        polling.wait_for(
            lambda: {n: cs.role(self.handle, n) for n in expected} == expected,
            f"roles {expected}",
            se.FAILOVER_S,
            interval=0.25,
        )

    def wait_best(self, node: str) -> float:
        """Wait until BIRD's best path for the VIP goes via ``node`` with the active
        attributes of its config; the Unix time this poll saw it."""
        med, path = se.advertised(self.configs[node], "active")
        _, seen = se.timed(
            f"BIRD's best path via {node} (MED {med}, AS path {path})",
            lambda: se.best_via(self.handle, node, med, path),
            se.FAILOVER_S,
            self.describe,
        )
        return seen

    def wait_gone(self, node: str) -> float:
        """Wait until BIRD has no route for the VIP via ``node``; when."""
        _, seen = se.timed(
            f"BIRD to drop {node}'s route",
            lambda: node not in se.routes_by_node(self.handle),
            se.FAILOVER_S,
            self.describe,
        )
        return seen

    def wait_return(self, node: str) -> None:
        address = se.NODE_ADDRESSES[node]
        polling.wait_for(
            lambda: se.return_gateway(self.handle) == {address},
            f"the router's return route for the endpoints' replies via {node}",
            se.WAIT_S,
            lambda: repr(se.return_gateway(self.handle)),
        )

    def batch_ok(self) -> bool:
        results = dp.http_gets(self.handle, se.L3_VIP, se.WEB_PORT, BATCH)
        return not dp.failures(results) and set(dp.names(results)) == set(dp.ENDPOINTS)

    def wait_served(self, what: str) -> int:
        """Bounded retries until a batch is answered by all three endpoints; how many batches
        it took."""
        tries = [0]

        def attempt() -> bool:
            tries[0] += 1
            return self.batch_ok()

        polling.wait_for(attempt, f"requests served {what}", 30.0)
        print(f"requests {what}: a full batch after {tries[0]} attempt(s)")
        return tries[0]

    def loop(self, name: str, duration: float) -> se.HttpLoop:
        loop = se.HttpLoop(self.handle, name, URL, duration)
        polling.holds_for(lambda: self.handle.alive(name), f"{name} running", 1.0)
        return loop

    def after_switch(self, loop: se.HttpLoop, label: str, broken_at: float) -> None:
        """node2 active and preferred, replies routed to it, requests served; figures."""
        best_at = self.wait_best("node2")
        self.wait_roles({"node2": "active"})
        self.wait_return("node2")
        print(f"BIRD after {label}:\n{self.describe()}")
        (master,) = se.ha_changes(self.handle, "node2", "master", broken_at)
        report = loop.report()
        se.figure(f"scenario2 {label}: node2 master", master - broken_at)
        se.figure(f"scenario2 {label}: BIRD best path via node2 (poll)", best_at - broken_at)
        se.figure(f"scenario2 {label}: BIRD best path after node2's master", best_at - master)
        se.outage(report, f"scenario2 {label} requests", broken_at)
        assert report["ok"] > 0, report
        self.wait_served("through node2")


def lo_addresses(handle: LabHandle, node: str) -> str:
    result = handle.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "lo"], timeout=10)
    return result.stdout


def test_active_daemon_killed_and_flushed(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    pair = Pair(lab_factory, tmp_path)
    handle = pair.handle
    assert f" {se.L3_VIP}/32 " in lo_addresses(handle, "node1")
    loop = pair.loop("loop-kill", KILL_LOOP_S)
    broken_at = time.time()
    os.kill(pair.pids["node1"], signal.SIGKILL)
    polling.wait_for(lambda: not handle.alive("node1-daemon"), "node1's daemon to die")
    gone_at = pair.wait_gone("node1")
    flushed = cs.flush_dataplane(handle, "node1")
    print(f"dataplane flush on node1:\n{flushed}")
    assert "detached" in flushed, flushed
    # the flush also releases the VIP addresses HA added (the gap noted in earlier issues)
    assert f"released {se.L3_VIP} on lo" in flushed, flushed
    assert f" {se.L3_VIP}/32 " not in lo_addresses(handle, "node1")
    se.figure("scenario2 kill: node1's route gone at BIRD (poll)", gone_at - broken_at)
    pair.after_switch(loop, "kill", broken_at)


def test_active_links_cut(lab_factory: Callable[..., LabHandle], tmp_path: Path) -> None:
    pair = Pair(lab_factory, tmp_path)
    loop = pair.loop("loop-cut", CUT_LOOP_S)
    broken_at = time.time()
    cs.link(pair.handle, "node1", "down")
    gone_at = pair.wait_gone("node1")
    se.figure("scenario2 cut: node1's route gone at BIRD (hold time, poll)", gone_at - broken_at)
    pair.after_switch(loop, "cut", broken_at)
