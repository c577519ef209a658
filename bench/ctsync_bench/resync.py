"""Bulk resync: node2 (re)starts and gets node1's whole table (100,000 connections).

node1's table holds the synthetic connections (:mod:`ctsync_bench.fill`) besides whatever real
ones are left. node2 starts from nothing (its dataplane flushed, or never started). The bench
follows node2's pinned map from the moment it exists: node1 sends its table in its map order
and node2 applies it in that order, so the last forward keys of node1's map (read the same
way, just before) arriving in node2's map, flagged remote, mark the end of the apply; a full
count of node2's remote connections then confirms all of them are there.

Timestamps: the daemons' JSON log ``ts`` (wall clock, ms) and the bench's own ``time.time()``
at the probes; all processes share the host's clock.
"""

from __future__ import annotations

import time
from typing import Any

from appliance.lab.api import LabHandle
from bpf.layout import CT_REMOTE, CT_REPLY, CtKey
from bpf.maps import Maps

from . import nodes
from .nodes import Event, log

TAIL_KEYS = 64


def tail_keys(maps: Maps, synthetic: set[bytes]) -> list[CtKey]:
    """The last ``TAIL_KEYS`` synthetic forward keys of the map in its iteration order (the
    order the daemon's bulk snapshot reads them)."""
    order = [
        key
        for key, entry in maps.conntrack.batch_items()
        if not entry.flags & CT_REPLY and bytes(key) in synthetic
    ]
    return order[-TAIL_KEYS:]


def remote_count(maps: Maps, synthetic: set[bytes]) -> int:
    """How many of the synthetic connections the map holds, flagged remote."""
    return sum(
        1
        for key, entry in maps.conntrack.batch_items()
        if entry.flags & CT_REMOTE and not entry.flags & CT_REPLY and bytes(key) in synthetic
    )


def measure(
    lab: LabHandle,
    node1: Maps,
    synthetic: set[bytes],
    config2: Any,
    *,
    timeout_s: float,
) -> tuple[dict[str, Any], Maps]:
    """Start node2, measure its bulk resync; returns the results and node2's opened maps."""
    tail = tail_keys(node1, synthetic)
    expected = len(synthetic)
    first1 = len(nodes.events(lab, "node1"))
    first2 = len(nodes.events(lab, "node2"))
    started = time.time()
    nodes.start_daemon(lab, "node2", config2)
    maps2 = nodes.open_maps(lab, "node2", timeout_s)
    pinned = time.time()
    deadline = time.monotonic() + timeout_s
    tail_at: float | None = None
    probes = 0
    while time.monotonic() < deadline:
        if all(
            (entry := maps2.conntrack.lookup(key)) is not None and entry.flags & CT_REMOTE
            for key in tail
        ):
            tail_at = time.time()
            break
        probes += 1
        time.sleep(0.001)
    full_at: float | None = None
    count = 0
    while time.monotonic() < deadline:
        count = remote_count(maps2, synthetic)
        if count >= expected:
            full_at = time.time()
            break
        time.sleep(0.2)
    results: dict[str, Any] = {
        "expected_remote": expected,
        "remote_count": count,  # of the synthetic ones
        "tail_keys_probed": len(tail),
        "tail_probe_rounds": probes,
    }
    ev1, ev2 = nodes.events(lab, "node1")[first1:], nodes.events(lab, "node2")[first2:]

    def first(events: list[Event], name: str) -> Event | None:
        return next((e for e in events if e.get("event") == name), None)

    sync_started = first(ev2, "sync_started")
    ready = first(ev2, "dataplane_ready")
    received = first(ev2, "sync_resync_received")
    joined = first(ev2, "sync_joined")
    snapshot = first(ev1, "sync_snapshot_sent")
    # the tail marks the end of the apply once the full count confirmed it
    done_at = tail_at if tail_at is not None and full_at is not None else full_at

    def since(base: Event | None, at: float | None) -> float | None:
        if base is None or at is None:
            return None
        return round(at - nodes.ts(base), 3)

    results.update(
        {
            "applied_all": full_at is not None,
            "node2_start_to_sync_started_s": None
            if sync_started is None
            else round(nodes.ts(sync_started) - started, 3),
            "node2_start_to_pins_s": round(pinned - started, 3),
            "node2_start_to_dataplane_ready_s": None
            if ready is None
            else round(nodes.ts(ready) - started, 3),
            "sync_started_to_snapshot_sent_s": since(
                sync_started, None if snapshot is None else nodes.ts(snapshot)
            ),
            "sync_started_to_resync_received_s": since(
                sync_started, None if received is None else nodes.ts(received)
            ),
            "sync_started_to_all_applied_s": since(sync_started, done_at),
            "snapshot_sent_to_all_applied_s": since(snapshot, done_at),
            "resync_received_to_all_applied_s": since(received, done_at),
            "snapshot_entries": None if snapshot is None else snapshot.get("entries"),
            "resync_received_entries": None if received is None else received.get("entries"),
            "sync_joined": None
            if joined is None
            else {k: joined.get(k) for k in ("resynced", "missed")},
            "tail_seen_before_full_count": tail_at is not None
            and (full_at is None or tail_at <= full_at),
        }
    )
    log(f"bulk resync: {results}")
    return results, maps2
