"""Helpers of the BGP reconfiguration lab test: node1's daemon with two BGP peers (the lab
router over IPv4 and over IPv6), edits of its ``bgp`` section followed by a SIGHUP reload
(waiting for the speaker's answer to the new generation), and what the node and BIRD show.
Every wait is a bounded poll; every command runs inside a lab namespace."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle
from tests.lab.support import config_tree, polling
from tests.lab.support.bird_configs import Bird
from tests.lab.support.dataplane import DAEMON, events
from tests.lab.support.nodes import ROUTER, ROUTER6, SCENARIO3, example_config, write_config

#: Routes BIRD originates towards node1, one per session, and node1's filters accepting them.
STATIC4, STATIC6 = "10.99.4.0/24", "fd00:99:4::/64"
IMPORTS = [{"prefix": "10.99.0.0/16", "le": 24}, {"prefix": "fd00:99::/32", "le": 64}]
ROUTER_AS = 65101
WAIT_S = 30.0
#: BIRD's protocol names for node1's two sessions (`bird_configs.neighbor`).
PROTOCOL = {ROUTER: "node1", ROUTER6: "node1v6"}


def two_peer_config(workdir: Path) -> Path:
    """Scenario 3's node1 (no HA) peering with the router over IPv4 and IPv6 and importing
    the router's static routes."""
    doc = example_config(SCENARIO3, "node1")
    doc["bgp"]["peers"].append(
        {"address": ROUTER6, "asn": ROUTER_AS, "hold_time": 9, "description": "router, IPv6"}
    )
    doc["bgp"]["import"] = IMPORTS
    return write_config(workdir, "node1", doc)


PEERS = ("bgp", "peers")


def edit_peer(path: Path, address: str, **changes: object) -> None:
    config_tree.edit(path, PEERS, "address", address, **changes)


def remove_peer(path: Path, address: str) -> dict[str, Any]:
    """Take peer ``address`` out of the config file; returns it (to add it back)."""
    return config_tree.remove(path, PEERS, "address", address)


def add_peer(path: Path, peer: dict[str, Any]) -> None:
    config_tree.add(path, PEERS, peer)


def reload(handle: LabHandle, pid: int) -> dict[str, Any]:
    """SIGHUP node1's daemon; wait until the reload is over (every service answered); the
    speaker's ``bgp_config_applied`` event for it (``error`` None when applied)."""
    before = len(events(handle, DAEMON))
    os.kill(pid, signal.SIGHUP)

    def answered() -> dict[str, Any] | None:
        new = events(handle, DAEMON)[before:]
        kinds = {e["event"] for e in new}
        if kinds & {"reload_rejected", "reload_unchanged", "commit_failed"}:
            raise AssertionError(f"reload not applied: {new}")
        applied = [e for e in new if e["event"] == "bgp_config_applied"]
        return applied[-1] if applied and "reload_applied" in kinds else None

    return polling.wait_for(answered, "the speaker to answer the reload", WAIT_S)


# --- node1's view (its API, through `triolb show --json`) ---------------------------------------


def show(handle: LabHandle, *args: str) -> Any:
    argv = [sys.executable, "-m", "appliance", "show", "--json", *args]
    result = handle.exec("node1", argv, timeout=20)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def neighbors(handle: LabHandle) -> dict[str, dict[str, Any]]:
    """address -> the speaker's status of that peer."""
    return {n["address"]: n for n in show(handle, "bgp", "neighbors")["neighbors"]}


def best_prefixes(handle: LabHandle) -> set[str]:
    return {r["prefix"] for r in show(handle, "bgp", "routes", "--limit", "100")["routes"]}


def wait_node(handle: LabHandle, check: Callable[[], bool], what: str) -> None:
    polling.wait_for(
        check, f"node1: {what}", WAIT_S, lambda: f"{neighbors(handle)}\n{best_prefixes(handle)}"
    )


# --- BIRD's view ------------------------------------------------------------------------------


def protocol_line(bird: Bird, address: str) -> str:
    """The protocol's row of ``show protocols``: name, state, since (the time its state last
    changed) and info (BGP state). Equal before and after: the session was not touched."""
    name = PROTOCOL[address]
    for line in bird.birdc("show protocols").splitlines():
        if line.split()[:1] == [name]:
            return " ".join(line.split())
    raise AssertionError(f"BIRD has no protocol {name}")


def received_notifications(bird: Bird, address: str) -> list[str]:
    """The NOTIFICATIONs BIRD logged as received on the session with ``address``."""
    marker = f" {PROTOCOL[address]}: Received: "
    return [line.split(marker, 1)[1] for line in bird.log().splitlines() if marker in line]
