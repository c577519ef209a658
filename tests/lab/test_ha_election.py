"""HA election end to end: two daemons in the flat-L2 lab elect an active node, which owns the
VIP and announces it by gratuitous ARP; link failure, recovery (preempt) and a graceful stop
(priority-0 handoff) move it. Every wait is a bounded poll; nothing asserts on elapsed time."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support.ha import (
    EXAMPLES,
    WAIT_S,
    active,
    client_reaches,
    events,
    has_vip,
    show_ha,
    start_daemon,
    two_nodes,
    wait_until,
)

pytestmark = pytest.mark.lab


def test_higher_priority_node_is_active_and_fails_over_on_link_loss(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle, _, _ = two_nodes(lab_factory)
    states = [e for e in events(handle, "node1-daemon") if e["event"] == "ha_state"]
    assert states and states[-1]["new"] == "master"
    shown = {node: show_ha(handle, node) for node in ("node1", "node2")}
    assert shown["node1"]["role"] == "active" and shown["node1"]["priority"] == 150
    assert shown["node2"]["role"] == "backup"
    assert shown["node2"]["master_address"] == "192.168.80.252"
    assert shown["node1"]["vips"] == ["192.168.80.200"]

    handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
    wait_until("node2 to become active", lambda: active(handle, "node2"))
    client_reaches(handle, "node2")
    node1 = events(handle, "node1-daemon")
    assert any(e["event"] == "ha_state" and e["new"] == "fault" for e in node1)

    handle.exec("node1", ["ip", "link", "set", "eth0", "up"], timeout=5, check=True)
    wait_until("node1 to take the VIP back (preempt)", lambda: active(handle, "node1"))
    client_reaches(handle, "node1")


def test_graceful_stop_hands_over_with_priority_zero(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle, pid1, _ = two_nodes(lab_factory)

    os.kill(pid1, signal.SIGTERM)
    handle.wait_for_log("node1-daemon", "daemon_stopped", timeout=WAIT_S)
    wait_until("node2 to become active", lambda: active(handle, "node2"))
    client_reaches(handle, "node2")
    node1 = events(handle, "node1-daemon")
    assert any(e["event"] == "ha_stopped" for e in node1)
    assert not has_vip(handle, "node1")  # released on the way out


def test_without_preempt_a_returning_node_stays_backup(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    text = (EXAMPLES / "scenario1-l2-node1.yaml").read_text()
    assert "preempt: true" in text
    config = tmp_path / "node1.yaml"
    config.write_text(text.replace("preempt: true", "preempt: false"))
    handle = lab_factory("scenario1", start_endpoints=False)
    start_daemon(handle, "node1", config)
    wait_until("node1 to become active", lambda: active(handle, "node1"))
    start_daemon(handle, "node2")
    handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
    wait_until("node2 to become active", lambda: active(handle, "node2"))
    handle.exec("node1", ["ip", "link", "set", "eth0", "up"], timeout=5, check=True)
    wait_until("node1 back as backup", lambda: show_ha(handle, "node1")["role"] == "backup")
    # node1 has the higher priority but must not take the VIP back: watch for a while
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert active(handle, "node2"), "node1 preempted although preempt is off"
        time.sleep(0.1)
    client_reaches(handle, "node2")
