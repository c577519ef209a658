"""Helpers of the HA reconfiguration lab tests: two-group node configs, edits of one group in
a node's config file followed by a SIGHUP reload (waiting for HA's answer to the new
generation), and per-group observations (`show --json ha`, ``ha_state`` log events, a VIP on
eth0). Every wait is a bounded poll; every command runs inside a lab namespace."""

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
from tests.lab.support.ha import WAIT_S, events, node_config

VIPS = {1: "192.168.80.200", 2: "192.168.80.201"}
NODES = ("node1", "node2")


def daemon(node: str) -> str:
    """The log name of ``node``'s daemon (`tests.lab.support.ha.start_daemon`'s default)."""
    return f"{node}-daemon"


def two_group_config(tmp_path: Path, node: str) -> Path:
    """``node``'s scenario-1 config (`node_config`) with a second group: id 2, VIP .201, the
    same priorities, peers and key as group 1 (node1 150, node2 100, preempt)."""
    path = node_config(tmp_path, node)
    tree = config_tree.load(path)
    (first,) = tree["ha"]["groups"]
    tree["ha"]["groups"].append({**first, "id": 2, "vips": [VIPS[2]], "track": []})
    config_tree.save(path, tree)
    return path


GROUPS = ("ha", "groups")


def edit_group(path: Path, gid: int, **changes: object) -> None:
    """Set ``changes`` in group ``gid`` of the config file."""
    config_tree.edit(path, GROUPS, "id", gid, **changes)


def remove_group(path: Path, gid: int) -> dict[str, Any]:
    """Take group ``gid`` out of the config file; returns it (to add it back)."""
    return config_tree.remove(path, GROUPS, "id", gid)


def add_group(path: Path, group: dict[str, Any]) -> None:
    config_tree.add(path, GROUPS, group)


VERDICTS = ("reload_applied", "reload_unchanged", "reload_rejected")


def reload(handle: LabHandle, node: str, pid: int, *, rejected: bool = False) -> dict[str, Any]:
    """SIGHUP ``node``'s daemon; wait for the daemon's verdict (rejected or not, as
    ``rejected`` says) and HA's answer to the reload's generation: its ``ha_config_applied``
    event (``error`` None when applied). A file equal to the running config makes no
    generation: ``{"error": None, "unchanged": True}``. A rejected commit restores the
    previous config as a further generation; the first answer is the reload's own."""
    name = daemon(node)
    before = len(events(handle, name))
    os.kill(pid, signal.SIGHUP)

    def answered() -> dict[str, Any] | None:
        new = events(handle, name)[before:]
        verdict = next((e for e in new if e["event"] in VERDICTS), None)
        if verdict is None:
            return None
        if (verdict["event"] == "reload_rejected") != rejected:
            raise AssertionError(f"{node}: unexpected {verdict}")
        if verdict["event"] == "reload_unchanged":
            return {"error": None, "unchanged": True}
        applied = [e for e in new if e["event"] == "ha_config_applied"]
        return applied[0] if applied else None

    return polling.wait_for(answered, f"{node}'s reload to be answered", WAIT_S)


def ha_states(handle: LabHandle, node: str, gid: int) -> list[dict[str, Any]]:
    """The ``ha_state`` events of group ``gid`` in ``node``'s daemon log, in order."""
    return [
        e for e in events(handle, daemon(node)) if e["event"] == "ha_state" and e["group"] == gid
    ]


def show_groups(handle: LabHandle, node: str) -> dict[int, dict[str, Any]]:
    """``triolb show --json ha`` in ``node``'s namespace: group id -> status."""
    result = handle.exec(
        node, [sys.executable, "-m", "appliance", "show", "--json", "ha"], timeout=20
    )
    assert result.returncode == 0, result.stderr
    return {int(g["id"]): g for g in json.loads(result.stdout)["groups"]}


def has_vip(handle: LabHandle, node: str, gid: int) -> bool:
    out = handle.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"], timeout=5).stdout
    return f" {VIPS[gid]}/32 " in out


def holder(handle: LabHandle, gid: int) -> str | None:
    """The one node holding group ``gid``'s VIP, None when none or both do."""
    holders = [node for node in NODES if has_vip(handle, node, gid)]
    return holders[0] if len(holders) == 1 else None


def roles(handle: LabHandle, gid: int) -> dict[str, str | None]:
    """node -> role of group ``gid`` as `show ha` reports it (None: not published)."""
    out: dict[str, str | None] = {}
    for node in NODES:
        group = show_groups(handle, node).get(gid)
        out[node] = None if group is None else str(group["role"])
    return out


def steady(
    handle: LabHandle, active: str, gid: int, transitions: dict[str, int]
) -> Callable[[], bool]:
    """A probe: ``active`` holds group ``gid``'s VIP alone and neither node's group ``gid``
    changed state since ``transitions`` (node -> ``ha_state`` events counted then)."""

    def probe() -> bool:
        return holder(handle, gid) == active and all(
            len(ha_states(handle, node, gid)) == count for node, count in transitions.items()
        )

    return probe


def counts(handle: LabHandle, gid: int) -> dict[str, int]:
    """node -> number of ``ha_state`` events of group ``gid`` so far."""
    return {node: len(ha_states(handle, node, gid)) for node in NODES}
