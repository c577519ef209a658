"""``triolb lab failover``: fail the running demo's active node, then bring it back.

The active node (found through the dashboards' ``/api/v1/ha``) is isolated: its links go down,
so its peer stops hearing adverts and takes over (HA), and BIRD drops its BGP session after the
hold time and prefers the new active. After ``restore_after`` seconds the links come back: the
node resyncs its connections from the peer and, having the higher priority, preempts. Each step
is reported as it happens: roles, BIRD's best route, and whether the demo's echo streams kept
going (every stream echoed more messages than before, none was reset). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, TextIO

from appliance.lab.api import LabHandle
from appliance.lab.demo_nodes import active_node, bird_best_via, roles, set_links, wait_until
from appliance.lab.demo_state import DemoInfo, find_demo
from appliance.lab.demo_traffic import read_status

#: master-down (~1 s) + BGP hold time (9 s) + TCP back-off, generously
FAILOVER_S = 60.0
MAX_RESTORE_AFTER_S = 600.0


def never() -> bool:
    return False


def echoed_per_stream(status: dict[str, Any] | None) -> dict[int, tuple[int, int]]:
    """stream -> (echoes received, resets) from the traffic status."""
    if status is None:
        return {}
    per = status["streams"]["per_stream"]
    return {int(s["stream"]): (int(s["echoed"]), int(s["resets"])) for s in per}


def streams_moved(info: DemoInfo, before: dict[int, tuple[int, int]]) -> tuple[int, int, int]:
    """(streams that echoed more since ``before`` without a reset, streams reset, total)."""
    now = echoed_per_stream(read_status(info.traffic_status))
    moved = sum(1 for s, (n, r) in now.items() if r == 0 and n > before.get(s, (0, 0))[0])
    reset = sum(1 for _, r in now.values() if r)
    return moved, reset, len(now)


def wait_streams(info: DemoInfo, before: dict[int, tuple[int, int]], out: TextIO) -> bool:
    """Wait until every stream echoed again (or was reset); report; True if none was reset."""
    started = time.monotonic()

    def settled() -> bool:
        moved, reset, total = streams_moved(info, before)
        return total > 0 and moved + reset == total

    with contextlib.suppress(TimeoutError):
        wait_until(never, settled, "the echo streams to move on", FAILOVER_S)
    moved, reset, total = streams_moved(info, before)
    status = read_status(info.traffic_status) or {"streams": {"longest_stall_ms": "?"}}
    print(
        f"  streams: {moved}/{total} still alive and echoing "
        f"({reset} reset, longest stall so far {status['streams']['longest_stall_ms']} ms, "
        f"checked after {time.monotonic() - started:.1f}s)",
        file=out,
        flush=True,
    )
    return total > 0 and moved == total


def wait_active(
    info: DemoInfo, node: str, handle: LabHandle, out: TextIO, *, peer_backup: bool
) -> bool:
    """Wait until ``node`` is active (and, with ``peer_backup``, the other one backup: an
    isolated node still calls itself active, nobody hears it) and BIRD prefers it; report how
    long that took."""
    started = time.monotonic()

    def taken() -> bool:
        now = roles(info.dashboards)
        return now[node] == "active" and (
            not peer_backup or all(r == "backup" for n, r in now.items() if n != node)
        )

    try:
        wait_until(never, taken, f"{node} active", FAILOVER_S)
        took = time.monotonic() - started
        wait_until(never, lambda: bird_best_via(handle) == node, f"BIRD via {node}", FAILOVER_S)
    except TimeoutError as exc:
        print(f"  {exc}; roles {roles(info.dashboards)}", file=out, flush=True)
        return False
    print(
        f"  {node} active after {took:.1f}s; BIRD's best route via {node} after "
        f"{time.monotonic() - started:.1f}s",
        file=out,
        flush=True,
    )
    return True


def run_failover(restore_after: float, prefix: str | None = None, out: TextIO = sys.stdout) -> int:
    """Fail the demo's active node for ``restore_after`` seconds; 0 if the peer took over, the
    node came back as active and no echo stream was reset, else 1."""
    if not 0 <= restore_after <= MAX_RESTORE_AFTER_S:
        raise ValueError(f"restore_after must be in [0, {MAX_RESTORE_AFTER_S:g}] seconds")
    info = find_demo(prefix)
    handle = LabHandle.attach(info.prefix)
    print(f"lab {info.prefix}: roles before {roles(info.dashboards)}", file=out, flush=True)
    failed = active_node(info.dashboards)
    if failed is None:
        print("no single active node: nothing to fail over", file=out)
        return 1
    peer = next(n for n in info.dashboards if n != failed)
    ok = True
    before = echoed_per_stream(read_status(info.traffic_status))
    set_links(handle, failed, "down")
    print(f"{failed}: links down (isolated from the cluster LAN)", file=out, flush=True)
    try:
        ok &= wait_active(info, peer, handle, out, peer_backup=False)
        ok &= wait_streams(info, before, out)
        print(
            f"  roles now {roles(info.dashboards)} ({failed} is cut off: it may still call "
            "itself active, but nobody hears it and BIRD no longer routes to it)",
            file=out,
            flush=True,
        )
        print(f"restoring {failed} in {restore_after:g}s", file=out, flush=True)
        time.sleep(restore_after)
    finally:
        set_links(handle, failed, "up")
        print(f"{failed}: links up", file=out, flush=True)
    before = echoed_per_stream(read_status(info.traffic_status))
    ok &= wait_active(info, failed, handle, out, peer_backup=True)
    ok &= wait_streams(info, before, out)
    print(f"roles after {roles(info.dashboards)}", file=out, flush=True)
    print("failover: ok" if ok else "failover: NOT ok (see above)", file=out, flush=True)
    return 0 if ok else 1
