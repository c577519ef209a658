"""HA after a crash: node1's daemon is SIGKILLed (no resignation, its VIP address left behind on
eth0); node2 takes over on the master-down timer and the client follows its gratuitous ARP.
Started again, node1's daemon first removes the stale VIP, then preempts, and the client moves
back to it. Every wait is a bounded poll; nothing asserts on elapsed time."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support.ha import (
    VIP,
    active,
    client_reaches,
    events,
    has_vip,
    node_config,
    roles,
    start_daemon,
    two_nodes,
    vip_holders,
    wait_until,
)

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")


def test_killed_master_fails_over_and_cleans_up_on_restart(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    configs = {node: node_config(tmp_path, node) for node in NODES}
    handle, pid1, _ = two_nodes(lab_factory, configs)

    os.kill(pid1, signal.SIGKILL)
    wait_until("node1's daemon to die", lambda: not handle.alive("node1-daemon"))
    wait_until(
        "node2 to become master",
        lambda: has_vip(handle, "node2") and roles(handle, ["node2"])["node2"] == "active",
    )
    client_reaches(handle, "node2")
    # nobody removed node1's address: expected after SIGKILL, the restart cleans it up
    assert vip_holders(handle) == ["node1", "node2"]
    assert not any(e["event"] == "ha_stopped" for e in events(handle, "node1-daemon"))

    start_daemon(handle, "node1", configs["node1"], name="node1-daemon-2")
    wait_until("node1 to take the VIP back (preempt)", lambda: active(handle, "node1"))
    wait_until(
        "node1 active, node2 backup",
        lambda: roles(handle, NODES) == {"node1": "active", "node2": "backup"},
    )
    client_reaches(handle, "node1")
    assert vip_holders(handle) == ["node1"]

    restarted = events(handle, "node1-daemon-2")
    kinds = [e["event"] for e in restarted]
    removed = [e for e in restarted if e["event"] == "ha_vips_removed"]
    assert removed and removed[0]["vips"] == [VIP], "the stale VIP was not removed at start"
    # removed while still backup: before the daemon became master and added it again
    first_master = next(
        i for i, e in enumerate(restarted) if e["event"] == "ha_state" and e["new"] == "master"
    )
    assert kinds.index("ha_vips_removed") < first_master
    assert kinds.index("ha_vips_removed") < kinds.index("ha_vips_added")
