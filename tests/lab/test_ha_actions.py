"""HA actions beyond the election, end to end in the lab: notify hooks, command and BGP-peer
tracks, key rotation by reload, IPv6 groups (unsolicited NA), and routed VIPs on ``lo``."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.api import LabHandle
from tests.lab.support.ha import (
    EXAMPLES,
    events,
    mac,
    node_config,
    roles,
    show_ha,
    start_daemon,
    two_nodes,
    wait_until,
)

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")
VIP6 = "fd80::200"
L3_VIP = "198.51.100.10"


def _edit(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    tree = yaml.safe_load(path.read_text())
    change(tree["ha"]["groups"][0])
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_notify_hook_and_command_track_move_the_active_node(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    out, flag = tmp_path / "notified", tmp_path / "healthy"
    flag.touch()
    script = 'import sys; open(sys.argv[1], "a").write(" ".join(sys.argv[2:]) + chr(10))'

    def hook_and_track(group: dict[str, Any]) -> None:
        group["notify"] = f"{sys.executable} -c '{script}' {out}"
        group["track"] = [
            {"type": "command", "name": f"test -e {flag}", "weight": -100, "interval_ms": 200}
        ]

    node1 = _edit(node_config(tmp_path, "node1"), hook_and_track)
    handle, _, _ = two_nodes(lab_factory, {"node1": node1})
    wait_until("the hook to report node1 active", lambda: "1 backup active" in _lines(out))
    assert _lines(out)[:2] == ["1 init backup", "1 backup active"]

    flag.unlink()  # the check fails: 150 - 100 < 100, node2 preempts
    wait_until(
        "node2 to take over", lambda: roles(handle, NODES) == dict(node1="backup", node2="active")
    )
    assert show_ha(handle, "node1")["priority"] == 50
    wait_until("the hook to report node1 backup", lambda: _lines(out)[-1:] == ["1 active backup"])

    flag.touch()
    wait_until(
        "node1 to take back over",
        lambda: roles(handle, NODES) == dict(node1="active", node2="backup"),
    )
    wait_until("the hook to report node1 active", lambda: _lines(out)[-1:] == ["1 backup active"])


def test_key_rotation_by_reload_never_flaps(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    keys = {node: tmp_path / f"{node}.key" for node in NODES}
    configs = {}
    for node in NODES:
        keys[node].write_text("old-secret\n")
        configs[node] = _edit(
            node_config(tmp_path, node), lambda g, n=node: g.update(auth_key_file=str(keys[n]))
        )
    handle, pid1, pid2 = two_nodes(lab_factory, configs)
    before = {node: show_ha(handle, node) for node in NODES}
    pids = {"node1": pid1, "node2": pid2}
    for step, text in enumerate(
        ["old-secret\nnew-secret\n", "new-secret\nold-secret\n", "new-secret\n"], start=1
    ):
        for node in NODES:  # one node, then the other: they differ by a step meanwhile
            keys[node].write_text(text)
            os.kill(pids[node], signal.SIGHUP)
            wait_until(
                f"{node} to reload its keys (step {step})",
                lambda n=node, step=step: (
                    sum(e["event"] == "ha_keys_reloaded" for e in events(handle, f"{n}-daemon"))
                    == step
                ),
            )
        # adverts keep flowing both ways and are accepted under the new keys
        for node in NODES:
            received = show_ha(handle, node)["received"]
            wait_until(
                f"{node} to accept adverts",
                lambda n=node, r=received: (
                    show_ha(handle, n)["received"] > r or show_ha(handle, n)["role"] == "active"
                ),
            )
    after = {node: show_ha(handle, node) for node in NODES}
    for node in NODES:
        assert after[node]["transitions"] == before[node]["transitions"], node
        assert not any(r.startswith("auth-") for r in after[node]["rejected"]), after[node]
    assert after["node1"]["role"] == "active" and after["node2"]["role"] == "backup"
    # the backup hears the master under the new key
    received = after["node2"]["received"]
    wait_until("node2 to hear node1", lambda: show_ha(handle, "node2")["received"] > received)


def _ipv6_addresses(handle: LabHandle) -> None:
    for host, suffix in (("node1", "252"), ("node2", "253"), ("client", "10")):
        handle.exec(
            host,
            ["ip", "-6", "addr", "add", f"fd80::{suffix}/64", "dev", "eth0", "nodad"],
            timeout=5,
            check=True,
        )


def _client_neighbour6(handle: LabHandle) -> str | None:
    # any datagram makes the client resolve the VIP (the answer is a port unreachable)
    handle.exec(
        "client",
        [
            sys.executable,
            "-c",
            "import socket, sys; socket.socket(socket.AF_INET6, "
            "socket.SOCK_DGRAM).sendto(b'x', (sys.argv[1], 9))",
            VIP6,
        ],
        timeout=5,
    )
    out = handle.exec("client", ["ip", "-6", "neigh", "show", VIP6], timeout=5).stdout
    match = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return match.group(1) if match else None


def _has_vip6(handle: LabHandle, node: str) -> bool:
    out = handle.exec(node, ["ip", "-6", "-o", "addr", "show", "dev", "eth0"], timeout=5).stdout
    return f" {VIP6}/128 " in out and "tentative" not in out.split(VIP6)[1].split("\n")[0]


def test_ipv6_group_elects_fails_over_and_moves_the_neighbour_entry(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    def ipv6(group: dict[str, Any]) -> None:
        group.update(vips=[VIP6], advert_interval_ms=100)
        group.pop("unicast_peers", None)  # multicast to ff02::12

    configs = {node: _edit(node_config(tmp_path, node), ipv6) for node in NODES}
    handle = lab_factory("scenario1", start_endpoints=False)
    _ipv6_addresses(handle)
    for node in NODES:
        start_daemon(handle, node, configs[node])
    wait_until(
        "node1 to own the IPv6 VIP",
        lambda: _has_vip6(handle, "node1") and not _has_vip6(handle, "node2"),
    )
    group = show_ha(handle, "node2")
    assert group["role"] == "backup" and group["master_address"].startswith("fe80::")
    wait_until(
        "the client to resolve the VIP to node1",
        lambda: _client_neighbour6(handle) == mac(handle, "node1"),
    )

    handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
    wait_until("node2 to own the IPv6 VIP", lambda: _has_vip6(handle, "node2"))
    # the unsolicited neighbour advertisement moved the client's entry, no solicitation needed
    wait_until(
        "the client's entry to point at node2",
        lambda: (
            mac(handle, "node2")
            in handle.exec("client", ["ip", "-6", "neigh", "show", VIP6], timeout=5).stdout
        ),
    )


def test_routed_vip_lives_on_lo_and_follows_the_bgp_peer_track(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    def config(node: str) -> Path:
        tree = yaml.safe_load((EXAMPLES / f"scenario2-bgp-active-backup-{node}.yaml").read_text())
        group = tree["ha"]["groups"][0]
        group["auth_key_file"] = str(EXAMPLES / "secrets" / "ha.key")
        group["track"] = [{"type": "bgp_peer", "name": "192.168.80.254", "weight": -100}]
        path = tmp_path / f"{node}.yaml"
        path.write_text(yaml.safe_dump(tree, sort_keys=False))
        return path

    def on_lo(node: str) -> bool:
        """The VIP is on ``node``'s lo, and not on its eth0."""
        out = handle.exec(node, ["ip", "-4", "-o", "addr", "show"], timeout=5).stdout
        devices = {line.split()[1] for line in out.splitlines() if f" {L3_VIP}/32 " in line}
        return devices == {"lo"}

    handle = lab_factory("scenario2", start_endpoints=False)
    for node in NODES:
        start_daemon(handle, node, config(node))
    wait_until(
        "node1 active with the VIP on lo",
        lambda: (
            on_lo("node1")
            and not on_lo("node2")
            and roles(handle, NODES) == dict(node1="active", node2="backup")
        ),
    )
    assert show_ha(handle, "node1")["priority"] == 150  # its BGP session is established

    handle.birdc("disable node1")  # node1's session goes down: 150 - 100 < 100
    wait_until(
        "node2 to take over", lambda: roles(handle, NODES) == dict(node1="backup", node2="active")
    )
    wait_until("the VIP to move to node2's lo", lambda: on_lo("node2") and not on_lo("node1"))

    handle.birdc("enable node1")
    wait_until(
        "node1 to take back over",
        lambda: (
            roles(handle, NODES) == dict(node1="active", node2="backup")
            and on_lo("node1")
            and not on_lo("node2")
        ),
    )
