"""HA election end to end: two daemons in the flat-L2 lab elect an active node, which owns the
VIP and announces it by gratuitous ARP; link failure, recovery (preempt) and a graceful stop
(priority-0 handoff) move it. Every wait is a bounded poll; nothing asserts on elapsed time."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.api import LabHandle

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).parents[2] / "examples"
VIP = "192.168.80.200"
WAIT_S = 20.0

# one ICMP echo to argv[1], exit 0 on a reply within a second (the lab hosts have no `ping`)
PING = """
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s & 0xFFFF) + (s >> 16)
    return ~((s & 0xFFFF) + (s >> 16)) & 0xFFFF
ident, dst = os.getpid() & 0xFFFF, sys.argv[1]
body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"triolb-ha"
pkt = body[:2] + struct.pack("!H", csum(body + b"\\0")) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.sendto(pkt, (dst, 0))
end = time.monotonic() + 1
while (left := end - time.monotonic()) > 0:
    s.settimeout(left)
    try:
        data, (src, _) = s.recvfrom(1500)
    except TimeoutError:
        break
    icmp = data[(data[0] & 15) * 4 :]
    if src == dst and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
        sys.exit(0)
sys.exit(1)
"""


def _wait_until(what: str, predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _start(handle: LabHandle, node: str, config: Path | None = None) -> int:
    config = config or EXAMPLES / f"scenario1-l2-{node}.yaml"
    argv = [sys.executable, "-m", "appliance", "run", "--config", str(config)]
    pid = handle.spawn(node, f"{node}-daemon", [*argv, "--log-format", "json"])
    handle.wait_for_log(f"{node}-daemon", "daemon_ready", timeout=WAIT_S)
    return pid


def _events(handle: LabHandle, name: str) -> list[dict[str, object]]:
    lines = handle.log_path(name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _has_vip(handle: LabHandle, node: str) -> bool:
    out = handle.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"], timeout=5).stdout
    return f" {VIP}/32 " in out


def _mac(handle: LabHandle, node: str) -> str:
    out = handle.exec(node, ["ip", "-o", "link", "show", "eth0"], timeout=5, check=True).stdout
    match = re.search(r"link/ether ([0-9a-f:]{17})", out)
    assert match, out
    return match.group(1)


def _client_neighbour_mac(handle: LabHandle) -> str | None:
    out = handle.exec("client", ["ip", "neigh", "show", VIP], timeout=5).stdout
    match = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return match.group(1) if match else None


def _ping(handle: LabHandle) -> bool:
    result = handle.exec("client", [sys.executable, "-c", PING, VIP], timeout=5)
    return result.returncode == 0


def _active(handle: LabHandle, node: str) -> bool:
    """``node`` holds the VIP and the other node does not."""
    other = "node2" if node == "node1" else "node1"
    return _has_vip(handle, node) and not _has_vip(handle, other)


def _client_reaches(handle: LabHandle, node: str) -> None:
    mac = _mac(handle, node)
    _wait_until(
        f"the client to reach the VIP at {node}'s MAC {mac}",
        lambda: _ping(handle) and _client_neighbour_mac(handle) == mac,
    )


def _show_ha(handle: LabHandle, node: str) -> dict[str, Any]:
    result = handle.exec(
        node, [sys.executable, "-m", "appliance", "show", "--json", "ha"], timeout=20
    )
    assert result.returncode == 0, result.stderr
    (group,) = json.loads(result.stdout)["groups"]
    assert isinstance(group, dict)
    return group


def _two_nodes(lab_factory: Callable[..., LabHandle]) -> tuple[LabHandle, int, int]:
    handle = lab_factory("scenario1", start_endpoints=False)
    pid1 = _start(handle, "node1")
    pid2 = _start(handle, "node2")
    _wait_until("node1 to become active", lambda: _active(handle, "node1"))
    _client_reaches(handle, "node1")
    return handle, pid1, pid2


def test_higher_priority_node_is_active_and_fails_over_on_link_loss(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle, _, _ = _two_nodes(lab_factory)
    states = [e for e in _events(handle, "node1-daemon") if e["event"] == "ha_state"]
    assert states and states[-1]["new"] == "master"
    shown = {node: _show_ha(handle, node) for node in ("node1", "node2")}
    assert shown["node1"]["role"] == "active" and shown["node1"]["priority"] == 150
    assert shown["node2"]["role"] == "backup"
    assert shown["node2"]["master_address"] == "192.168.80.252"
    assert shown["node1"]["vips"] == ["192.168.80.200"]

    handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
    _wait_until("node2 to become active", lambda: _active(handle, "node2"))
    _client_reaches(handle, "node2")
    node1 = _events(handle, "node1-daemon")
    assert any(e["event"] == "ha_state" and e["new"] == "fault" for e in node1)

    handle.exec("node1", ["ip", "link", "set", "eth0", "up"], timeout=5, check=True)
    _wait_until("node1 to take the VIP back (preempt)", lambda: _active(handle, "node1"))
    _client_reaches(handle, "node1")


def test_graceful_stop_hands_over_with_priority_zero(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle, pid1, _ = _two_nodes(lab_factory)

    os.kill(pid1, signal.SIGTERM)
    handle.wait_for_log("node1-daemon", "daemon_stopped", timeout=WAIT_S)
    _wait_until("node2 to become active", lambda: _active(handle, "node2"))
    _client_reaches(handle, "node2")
    node1 = _events(handle, "node1-daemon")
    assert any(e["event"] == "ha_stopped" for e in node1)
    assert not _has_vip(handle, "node1")  # released on the way out


def test_without_preempt_a_returning_node_stays_backup(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    shutil.copytree(EXAMPLES / "secrets", tmp_path / "secrets")
    text = (EXAMPLES / "scenario1-l2-node1.yaml").read_text()
    assert "preempt: true" in text
    config = tmp_path / "node1.yaml"
    config.write_text(text.replace("preempt: true", "preempt: false"))
    handle = lab_factory("scenario1", start_endpoints=False)
    _start(handle, "node1", config)
    _wait_until("node1 to become active", lambda: _active(handle, "node1"))
    _start(handle, "node2")
    handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
    _wait_until("node2 to become active", lambda: _active(handle, "node2"))
    handle.exec("node1", ["ip", "link", "set", "eth0", "up"], timeout=5, check=True)
    _wait_until("node1 back as backup", lambda: _show_ha(handle, "node1")["role"] == "backup")
    # node1 has the higher priority but must not take the VIP back: watch for a while
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert _active(handle, "node2"), "node1 preempted although preempt is off"
        time.sleep(0.1)
    _client_reaches(handle, "node2")
