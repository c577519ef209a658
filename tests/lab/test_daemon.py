"""`triolb run` as a real process inside a node namespace: boot duties, reload, stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).parents[2] / "examples"


def _events(handle: LabHandle, name: str) -> list[dict[str, object]]:
    lines = handle.log_path(name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _sysctl(handle: LabHandle, host: str, name: str) -> str:
    return handle.exec(host, ["sysctl", "-n", name], timeout=5, check=True).stdout.strip()


def test_daemon_boots_reloads_and_stops_in_a_node_namespace(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle = lab_factory("scenario2", start_endpoints=False, start_router=False)
    root_nonlocal_bind = Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text()
    assert _sysctl(handle, "node1", "net.ipv4.ip_nonlocal_bind") == "0"
    config = EXAMPLES / "scenario2-bgp-active-backup-node1.yaml"
    pid = handle.spawn(
        "node1",
        "daemon",
        [sys.executable, "-m", "appliance", "run", "--config", str(config), "--log-format", "json"],
    )
    handle.wait_for_log("daemon", "daemon_ready")

    # boot duties acted inside the node's namespace, not in the root namespace
    assert _sysctl(handle, "node1", "net.ipv4.ip_nonlocal_bind") == "1"
    assert _sysctl(handle, "node1", "net.ipv4.conf.all.arp_ignore") == "1"
    assert _sysctl(handle, "node1", "net.ipv4.conf.eth0.send_redirects") == "0"
    assert Path("/proc/sys/net/ipv4/ip_nonlocal_bind").read_text() == root_nonlocal_bind
    events = _events(handle, "daemon")
    names = [e["event"] for e in events]
    assert "sysctl_set" in names
    assert "bpffs_mounted" in names
    ready = next(e for e in events if e["event"] == "daemon_ready")
    assert ready["services"] == [
        "looplag",
        "config",
        "intent",
        "dataplane",
        "health",
        "ha",
        "bgp",
        "web",
    ]

    os.kill(pid, signal.SIGHUP)
    handle.wait_for_log("daemon", "reload_unchanged")

    os.kill(pid, signal.SIGTERM)
    handle.wait_for_log("daemon", "daemon_stopped")
    deadline = time.monotonic() + 10
    while handle.alive("daemon") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not handle.alive("daemon")
    stopped = next(e for e in _events(handle, "daemon") if e["event"] == "daemon_stopped")
    assert stopped["exit_code"] == 0


def test_daemon_refuses_an_invalid_config(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario2", start_endpoints=False, start_router=False)
    bad = tmp_path / "bad.yaml"
    bad.write_text("node:\n  name: node1\n  id: 1\n  colour: blue\n")
    result = handle.exec(
        "node1", [sys.executable, "-m", "appliance", "run", "--config", str(bad)], timeout=20
    )
    assert result.returncode == 2
    assert "node.colour (line 4): unknown key" in result.stderr
    assert _sysctl(handle, "node1", "net.ipv4.ip_nonlocal_bind") == "0"  # nothing applied
