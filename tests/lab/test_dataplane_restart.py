"""Established connections survive configuration changes and daemon crashes.

Scenario 1, node1's daemon alone (VIP on its eth0), a one-arm TCP echo service on
192.168.80.200:9000 over ep1..ep3. The client holds long-lived echo streams: each round, every
stream sends one sequence-numbered message and reads its echo back, checked byte for byte (a
reset, a timeout, a lost, duplicated or reordered message fails the stream).

* Removing an endpoint drains it: its connections keep working after the reload that removes
  it, while new connections go to the remaining endpoints only.
* ``kill -9`` of the daemon: the program stays attached and the maps pinned (the daemon runs
  with the host's mounts, so its pins are in the shared bpffs), the streams keep going while it
  is dead; restarted, it adopts the pinned maps and the streams keep going: zero failures.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support import dataplane as dp
from tests.lab.support import polling

pytestmark = pytest.mark.lab

TARGET = f"{dp.L2_VIP}:{dp.ECHO_PORT}"
ROUNDS = 25  # rounds of messages between two steps (each stream: one message per round)


def echo(endpoints: tuple[str, ...] = dp.ENDPOINTS, mode: str = "onearm") -> list[dict[str, Any]]:
    return [dp.service("echo", dp.L2_VIP, dp.ECHO_PORT, mode=mode, endpoints=endpoints)]


def assert_clean(report: dict[str, Any]) -> None:
    """No stream failed, and every message sent came back."""
    assert not report["failed"], report["failed"]
    for stream in report["streams"]:
        assert stream["sent"] == stream["echoed"], stream


@pytest.mark.parametrize("mode", ["onearm", "dsr"])
def test_removed_endpoint_drains(
    mode: str, lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle, config, pid = dp.l2_node(lab_factory, tmp_path, echo(mode=mode))
    if mode == "dsr":
        dp.make_dsr_endpoints(handle)
    streams = dp.Streams(handle, tmp_path, "long", TARGET, 9)
    try:
        placed = dp.endpoint_of_ports(handle, streams.ports())
        assert Counter(placed.values()) == Counter({ep: 3 for ep in dp.ENDPOINTS}), placed
        streams.advance(ROUNDS, "messages before the reload")

        dp.reload(handle, pid, config, echo(("ep1", "ep2"), mode))
        status = streams.advance(0, "the status after the reload")
        before = {s["port"]: s["echoed"] for s in status["streams"]}
        status = streams.advance(ROUNDS, "messages after the reload")
        assert not status["failed"], status["failed"]
        on_ep3 = [port for port, ep in placed.items() if ep == "ep3"]
        after = {s["port"]: s["echoed"] for s in status["streams"]}
        assert all(after[port] >= before[port] + ROUNDS for port in on_ep3), (before, after)
        assert dp.peer_ports(handle, "ep3") >= set(on_ep3)  # still connected to ep3

        fresh = dp.Streams(handle, tmp_path, "fresh", TARGET, 6)
        where = dp.endpoint_of_ports(handle, fresh.ports())
        assert_clean(fresh.stop())
        assert Counter(where.values()) == Counter({"ep1": 3, "ep2": 3}), where
    finally:
        report = streams.stop()
    assert_clean(report)


def test_daemon_kill_and_restart_keeps_flows(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle, config, pid = dp.l2_node(lab_factory, tmp_path, echo(), share_mounts=True)
    streams = dp.Streams(handle, tmp_path, "long", TARGET, 20)
    try:
        streams.advance(ROUNDS, "messages before the kill")

        os.kill(pid, signal.SIGKILL)
        polling.wait_for(lambda: not handle.alive(dp.DAEMON), "the daemon to die", dp.WAIT_S)
        status = streams.advance(ROUNDS, "messages while the daemon is dead")
        assert not status["failed"], status["failed"]

        dp.start_daemon(handle, config, "node1-daemon-2", share_mounts=True)
        loaded = dp.events_named(handle, "dataplane_loaded", "node1-daemon-2")
        assert loaded and loaded[0]["adopted"] is True, loaded
        assert not loaded[0]["layout_reset"]
        status = streams.advance(ROUNDS, "messages after the restart")
        assert not status["failed"], status["failed"]
        # the restarted daemon left the programmed service as it found it
        reconciled = dp.events_named(handle, "dataplane_reconciled", "node1-daemon-2")
        assert not reconciled, reconciled
        # and new connections are balanced as before
        fresh = dp.Streams(handle, tmp_path, "fresh", TARGET, 3)
        where = dp.endpoint_of_ports(handle, fresh.ports())
        assert_clean(fresh.stop())
        assert sorted(where.values()) == list(dp.ENDPOINTS), where
    finally:
        report = streams.stop()
    assert_clean(report)
    assert report["rounds"] >= 3 * ROUNDS
