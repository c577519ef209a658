"""Helpers of the HA election lab tests: node configs, daemons, VIP and neighbour checks,
`triolb show ha`. Every wait is a bounded poll; every command runs inside a lab namespace."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import HA3_NODE_ADDRESSES
from appliance.lab.topology import HostRole
from tests.lab.support import polling

EXAMPLES = Path(__file__).parents[3] / "examples"
HA_KEY = EXAMPLES / "secrets" / "ha.key"
VIP = "192.168.80.200"
CLIENT = "192.168.80.10"
VRID = 1
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


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    polling.wait_for(predicate, what, timeout)


def holds_for(what: str, predicate: Callable[[], bool], duration: float) -> None:
    """``predicate`` stays true for ``duration`` seconds."""
    polling.holds_for(predicate, what, duration)


# --- configs ----------------------------------------------------------------------------------


def node_config(
    tmp_path: Path,
    node: str,
    *,
    priority: int | None = None,
    unicast_peers: Sequence[str] | None = None,
    advert_interval_ms: int | None = None,
    preempt: bool | None = None,
) -> Path:
    """``node``'s config, derived from examples/scenario1-l2-node{1,2}.yaml (node3 from node2's,
    as 192.168.80.251), written to ``tmp_path``. ``auth_key_file`` is the absolute path of
    examples/secrets/ha.key. ``unicast_peers=[]`` removes the peers: multicast adverts."""
    example = "node1" if node == "node1" else "node2"
    tree: dict[str, Any] = yaml.safe_load((EXAMPLES / f"scenario1-l2-{example}.yaml").read_text())
    if node == "node3":
        tree["node"].update(name="node3", id=3, router_id=HA3_NODE_ADDRESSES["node3"])
    assert tree["node"]["name"] == node, f"no example config for {node}"
    (group,) = tree["ha"]["groups"]
    group["auth_key_file"] = str(HA_KEY)
    if priority is not None:
        group["priority"] = priority
    if unicast_peers is not None:
        group.pop("unicast_peers", None)
        if unicast_peers:
            group["unicast_peers"] = list(unicast_peers)
    if advert_interval_ms is not None:
        group["advert_interval_ms"] = advert_interval_ms
    if preempt is not None:
        group["preempt"] = preempt
    path = tmp_path / f"{node}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# --- daemons ----------------------------------------------------------------------------------


def start_daemon(
    handle: LabHandle, node: str, config: Path | None = None, name: str | None = None
) -> int:
    """Start ``node``'s daemon (log ``name``, default ``<node>-daemon``); wait until ready."""
    config = config or EXAMPLES / f"scenario1-l2-{node}.yaml"
    name = name or f"{node}-daemon"
    argv = [sys.executable, "-m", "appliance", "run", "--config", str(config)]
    pid = handle.spawn(node, name, [*argv, "--log-format", "json"])
    handle.wait_for_log(name, "daemon_ready", timeout=WAIT_S)
    return pid


def events(handle: LabHandle, name: str) -> list[dict[str, Any]]:
    lines = handle.log_path(name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def ha_states(handle: LabHandle, name: str) -> list[str]:
    """The states a daemon's HA group entered, in order (from its ``ha_state`` log events)."""
    return [str(e["new"]) for e in events(handle, name) if e["event"] == "ha_state"]


# --- observations -----------------------------------------------------------------------------


def nodes_of(handle: LabHandle) -> list[str]:
    return [h.name for h in handle.topology.hosts_with_role(HostRole.NODE)]


def has_vip(handle: LabHandle, node: str) -> bool:
    out = handle.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"], timeout=5).stdout
    return f" {VIP}/32 " in out


def vip_holders(handle: LabHandle) -> list[str]:
    return [node for node in nodes_of(handle) if has_vip(handle, node)]


def active(handle: LabHandle, node: str) -> bool:
    """``node`` holds the VIP and no other node does."""
    return vip_holders(handle) == [node]


def mac(handle: LabHandle, node: str) -> str:
    out = handle.exec(node, ["ip", "-o", "link", "show", "eth0"], timeout=5, check=True).stdout
    match = re.search(r"link/ether ([0-9a-f:]{17})", out)
    assert match, out
    return match.group(1)


def client_neighbour_mac(handle: LabHandle) -> str | None:
    out = handle.exec("client", ["ip", "neigh", "show", VIP], timeout=5).stdout
    match = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return match.group(1) if match else None


def ping(handle: LabHandle) -> bool:
    result = handle.exec("client", [sys.executable, "-c", PING, VIP], timeout=5)
    return result.returncode == 0


def client_reaches(handle: LabHandle, node: str) -> None:
    address = mac(handle, node)
    wait_until(
        f"the client to reach the VIP at {node}'s MAC {address}",
        lambda: ping(handle) and client_neighbour_mac(handle) == address,
    )


def show_ha(handle: LabHandle, node: str) -> dict[str, Any]:
    """The one HA group of ``triolb show --json ha``, run in ``node``'s namespace."""
    result = handle.exec(
        node, [sys.executable, "-m", "appliance", "show", "--json", "ha"], timeout=20
    )
    assert result.returncode == 0, result.stderr
    (group,) = json.loads(result.stdout)["groups"]
    assert isinstance(group, dict)
    return group


def roles(handle: LabHandle, nodes: Sequence[str]) -> dict[str, str]:
    """node -> role (``active``, ``backup``, ``fault``...) as `show ha` reports it."""
    return {node: str(show_ha(handle, node)["role"]) for node in nodes}


# --- labs -------------------------------------------------------------------------------------


def two_nodes(
    lab_factory: Callable[..., LabHandle], configs: dict[str, Path] | None = None
) -> tuple[LabHandle, int, int]:
    """Scenario 1 with node1 then node2 running (``configs``: node -> config, default the
    examples); returns once node1 is active and the client reaches it."""
    configs = configs or {}
    handle = lab_factory("scenario1", start_endpoints=False)
    pid1 = start_daemon(handle, "node1", configs.get("node1"))
    pid2 = start_daemon(handle, "node2", configs.get("node2"))
    wait_until("node1 to become active", lambda: active(handle, "node1"))
    client_reaches(handle, "node1")
    return handle, pid1, pid2
