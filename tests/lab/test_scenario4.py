"""Scenario 4 end to end: established connections survive the loss of the active node.

Both daemons run the scenario-4 examples (full-NAT echo and web services on VIP 198.51.100.10,
floating source 192.168.80.240, VIP advertised to BIRD with role-based MED, conntrack sync on
7946). node1 (priority 150) is active and preferred at BIRD. The client holds 200 long-lived TCP
echo streams through the VIP (``tests.lab.support.ctsync streams``: every message is
sequence-numbered and its echo checked in order; a stream fails on a reset, an EOF or 60 s
without an echo). Once node2 holds all 200 connections as remote entries, node1 fails:

1. its link goes down (isolated: HA moves to node2, BIRD prefers node2 once node1's session
   times out), then comes back (node1 resyncs from node2, preempts, is preferred again);
2. its daemon is SIGKILLed and its programs and pinned maps removed (``dataplane flush``),
   then it is started again (it recompiles into empty maps, gets the connections back by bulk
   resync as remote entries, and only then preempts: the HA join gate).

Through both failovers and both returns, every stream continues with no reset and no lost,
duplicated or reordered message, and new connections work. The tests assert on stream
integrity, never on elapsed time; every wait is a bounded poll. Stall lengths are printed
(``-s``) for the record.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support import ctsync as cs
from tests.lab.support import dataplane as dp
from tests.lab.support import polling

pytestmark = pytest.mark.lab

STREAMS = 200
#: echoes every stream must receive between two steps (one message per stream per 0.1 s)
MESSAGES = 5
HTTP_REQUESTS = 6


def wait(what: str, probe: Callable[[], Any], timeout: float = cs.WAIT_S, **kw: Any) -> Any:
    return polling.wait_for(probe, what, timeout, interval=0.25, **kw)


def wait_roles(handle: LabHandle, active: str, timeout: float = cs.FAILOVER_S) -> None:
    backup = "node2" if active == "node1" else "node1"
    expected = {active: "active", backup: "backup"}
    wait(
        f"{active} active, {backup} backup",
        lambda: {n: cs.role(handle, n) for n in cs.NODES} == expected,
        timeout,
    )


def wait_preferred(handle: LabHandle, node: str, timeout: float = cs.FAILOVER_S) -> None:
    wait(
        f"BIRD's best route for {cs.PREFIX} via {node} (MED 10, no prepend)",
        lambda: cs.preferred_at_bird(handle, node),
        timeout,
        describe=lambda: cs.describe_bird(handle),
    )


def start_pair(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> tuple[LabHandle, dict[str, Path], dict[str, int]]:
    """Scenario 4 with both daemons on the example configs; returns once node1 is active and
    preferred at BIRD, node2's backup route has the backup MED and prepends, and sync is up
    both ways."""
    handle = lab_factory("scenario4")
    configs = {node: cs.node_config(tmp_path, node) for node in cs.NODES}
    pids = {n: cs.spawn_daemon(handle, n, configs[n], f"{n}-daemon") for n in cs.NODES}
    for node in cs.NODES:
        cs.wait_daemon_ready(handle, f"{node}-daemon")
    wait_roles(handle, "node1")
    wait_preferred(handle, "node1")

    def backup_route() -> bool:
        routes = [r for r in cs.bird_routes(handle) if cs.NODE_ADDRESSES["node2"] in r.via]
        return any(r.med == cs.MED["backup"] and r.as_path == [65100] * 4 for r in routes)

    wait("node2's backup route (MED 20, 3 prepends) at BIRD", backup_route)

    def sync_up() -> bool:
        for node in cs.NODES:
            status = cs.sync_status(handle, node)
            if status is None or [p["state"] for p in status["peers"]] != ["up"]:
                return False
        return True

    wait("sync up on both nodes", sync_up)
    return handle, configs, pids


def start_streams(handle: LabHandle, tmp_path: Path) -> cs.Streams:
    """200 streams through node1, all replicated to node2 as remote entries."""
    streams = cs.Streams(handle, tmp_path, "streams", cs.ECHO_TARGET, STREAMS)
    streams.wait_connected()
    wait(
        f"node2 to hold the {STREAMS} connections as remote entries",
        lambda: cs.remote_count(handle, "node2") == STREAMS,
    )
    assert cs.local_count(handle, "node1") == STREAMS
    assert cs.local_count(handle, "node2") == 0
    streams.advance(MESSAGES, "messages through node1")
    return streams


def assert_intact(status: dict[str, Any], what: str) -> None:
    """No stream failed or lost, duplicated, reordered or garbled a message."""
    bad = cs.broken(status)
    assert not bad, f"{what}: {len(bad)} broken streams, e.g. {bad[:5]}"
    assert status["connected"] == STREAMS, f"{what}: {status['connected']} connected"


def assert_new_connections_work(handle: LabHandle) -> None:
    results = dp.http_gets(handle, cs.VIP, cs.WEB_PORT, HTTP_REQUESTS)
    assert not dp.failures(results), dp.failures(results)
    assert set(dp.names(results)) <= set(dp.ENDPOINTS)


def kinds_since(handle: LabHandle, name: str, start: int) -> list[str]:
    """The kinds of a daemon's log events from the ``start``-th on."""
    return [e["event"] for e in cs.events(handle, name)[start:]]


def summary(events: list[dict[str, Any]]) -> list[str]:
    """HA and sync events, shortly, for the record."""
    out = []
    for e in events:
        if e["event"] == "ha_state":
            out.append(f"ha_state {e['old']}->{e['new']} ({e['reason']})")
        elif e["event"].startswith(("sync_", "ha_join")):
            out.append(e["event"])
    return out


class Carried:
    """Which node forwarded the streams between two points: each node's echo-service packet
    counter, read at ``mark()`` and compared later."""

    def __init__(self, handle: LabHandle) -> None:
        self.handle = handle
        self.before: dict[str, int] = {}

    def mark(self) -> None:
        self.before = {node: cs.service_packets(self.handle, node) for node in cs.NODES}

    def by(self, node: str) -> int:
        """Packets ``node`` forwarded for the echo service since ``mark()`` (as of the
        dataplane's last status: it is published every 2 s)."""
        return cs.service_packets(self.handle, node) - self.before[node]

    def assert_carried_by(self, node: str, packets: int = STREAMS * MESSAGES) -> int:
        """``node`` forwarded at least ``packets`` echo packets since ``mark()`` (a bounded
        poll: the counters lag by up to one status interval)."""
        return int(
            wait(
                f"{node} to forward {packets} echo packets",
                lambda: self.by(node) >= packets and self.by(node),
            )
        )


def record(streams: cs.Streams, label: str) -> None:
    """Print the stall the streams saw so far (the longest gap, the quiet periods)."""
    status = streams.status()
    assert status is not None
    print(
        f"{label}: max gap {status['max_gap_s']} s, quiet periods {status['quiet_periods']}, "
        f"echoed {status['echoed']}"
    )


def finish(streams: cs.Streams) -> dict[str, Any]:
    """Stop the streams; every message sent came back, in order, on all 200."""
    report = streams.stop()
    assert_intact(report, "at the end")
    for stream in report["streams"]:
        assert stream["sent"] == stream["echoed"] > 0, stream
    record(streams, "final")
    return report


def test_links_down_failover_and_return_keep_streams(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle, _, _ = start_pair(lab_factory, tmp_path)
    streams = start_streams(handle, tmp_path)
    carried = Carried(handle)
    carried.mark()
    streams.advance(MESSAGES, "messages through node1")
    carried.assert_carried_by("node1")
    steady = {node: carried.by(node) for node in cs.NODES}
    print(f"echo packets forwarded in steady state: {steady}")

    carried.mark()
    cs.link(handle, "node1", "down")
    wait("node2 to become active", lambda: cs.role(handle, "node2") == "active", cs.FAILOVER_S)
    wait_preferred(handle, "node2")
    status = streams.advance(MESSAGES, "every stream through node2", cs.FAILOVER_S)
    assert_intact(status, "after node1's links went down")
    carried.assert_carried_by("node2")
    record(streams, "failover to node2")
    assert_new_connections_work(handle)
    # node2 forwards the streams by the entries it learnt (still flagged remote)
    assert cs.remote_count(handle, "node2") == STREAMS

    before_up = len(cs.events(handle, "node1-daemon"))
    cs.link(handle, "node1", "up")
    wait(
        "node1 to resync from node2 after its links came back",
        lambda: "sync_resync_received" in kinds_since(handle, "node1-daemon", before_up),
    )
    wait_roles(handle, "node1")
    wait_preferred(handle, "node1")
    since_up = cs.events(handle, "node1-daemon")[before_up:]
    print("node1 after its links came back:", summary(since_up))
    yielded = [
        e for e in cs.events_named(handle, "node2-daemon", "ha_state") if e["new"] == "backup"
    ]
    received = [e for e in since_up if e["event"] == "sync_resync_received"]
    print(
        f"node1 resync received at {received[0]['ts']}, node2 back to backup at {yielded[-1]['ts']}"
    )
    kinds = [e["event"] for e in since_up]
    resync = kinds.index("sync_resync_received")
    masters = [
        i for i, e in enumerate(since_up) if e["event"] == "ha_state" and e["new"] == "master"
    ]
    assert all(resync < i for i in masters), "node1 took over before it had resynced"
    carried.mark()
    status = streams.advance(MESSAGES, "every stream through node1 again", cs.FAILOVER_S)
    assert_intact(status, "after node1 came back")
    carried.assert_carried_by("node1")
    record(streams, "back to node1")
    assert_new_connections_work(handle)
    finish(streams)


def test_daemon_killed_and_flushed_then_restarted_keeps_streams(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle, configs, pids = start_pair(lab_factory, tmp_path)
    streams = start_streams(handle, tmp_path)
    carried = Carried(handle)
    carried.mark()

    os.kill(pids["node1"], signal.SIGKILL)
    wait("node1's daemon to die", lambda: not handle.alive("node1-daemon"))
    wait("node2 to become active", lambda: cs.role(handle, "node2") == "active", cs.FAILOVER_S)
    # its programs and maps go once node2 announced the floating source: a node that lost its
    # programs but keeps its addresses would answer the endpoints' replies still sent to its
    # MAC with RST until then (a known limitation: `dataplane flush` leaves the VIPs)
    flushed = cs.flush_dataplane(handle, "node1")
    assert "detached" in flushed and "unpinned" in flushed, flushed
    wait_preferred(handle, "node2")
    status = streams.advance(MESSAGES, "every stream through node2", cs.FAILOVER_S)
    assert_intact(status, "after node1's daemon was killed and flushed")
    carried.assert_carried_by("node2")
    record(streams, "failover to node2")
    assert_new_connections_work(handle)

    cs.spawn_daemon(handle, "node1", configs["node1"], "node1-daemon-2")
    cs.wait_daemon_ready(handle, "node1-daemon-2")
    wait_roles(handle, "node1")
    wait_preferred(handle, "node1")
    # the flushed dataplane started empty: node1 knows the streams by the resync only
    assert cs.remote_count(handle, "node1") == STREAMS
    restarted = cs.events(handle, "node1-daemon-2")
    kinds = [e["event"] for e in restarted]
    assert "sync_joined" in kinds and "sync_resynced" in kinds, kinds
    joined = restarted[kinds.index("sync_joined")]
    assert joined["resynced"] == [f"{cs.NODE_ADDRESSES['node2']}:7946"], joined
    first_master = next(
        i for i, e in enumerate(restarted) if e["event"] == "ha_state" and e["new"] == "master"
    )
    assert kinds.index("sync_resynced") < first_master, "preempted before the resync"

    carried.mark()
    status = streams.advance(MESSAGES, "every stream through node1 again", cs.FAILOVER_S)
    assert_intact(status, "after node1's daemon came back")
    carried.assert_carried_by("node1")
    record(streams, "back to node1")
    assert_new_connections_work(handle)
    finish(streams)
