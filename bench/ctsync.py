"""Conntrack sync benchmark: replication lag, bulk resync and throughput (issue 7).

On the scenario-4 lab (client 203.0.113.10 behind the BIRD router; node1 192.168.80.252
active, node2 192.168.80.253 backup; full NAT to ep1..ep3; sync over UDP 7946, HMAC) both
triolb daemons run the example configs (plus a UDP echo service, see ctsync_bench.nodes):

1. lag: the client opens TCP connections to VIP:9000 at a steady rate; for each, the time from
   ``connect()`` returning to its entry being in node2's conntrack map (flagged remote);
2. bulk resync: node2 is stopped and flushed, node1's table is filled with 100,000 synthetic
   local connections, node2 starts: the time from its ``sync_started`` until all 100,000 are
   applied, and the transfer rate (entries / time from node1's snapshot to the last applied);
3. lag again with 100,000 connections in both tables;
4. the peer: kernel conntrack (nftables DNAT+SNAT) replicated by conntrackd (FTFW), the same
   connections, the same lag definition.

Prints JSON ``{"entries", "lag_ms": {"p50", "p99"}, "entries_per_s", "bulk_resync_s", ...}``
and writes it to bench/results/ctsync.json. Progress goes to stderr. Needs root. See
bench/README.md.

    .venv/bin/python bench/ctsync.py [--entries N] [--connections N] [--rate R]
                                     [--skip-conntrackd]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(1, str(REPO_DIR))  # the project (also installed editable in .venv)

from benchrun import run_and_report  # noqa: E402
from ctsync_bench import conntrackd, fill, lag, nodes, resync  # noqa: E402
from ctsync_bench.nodes import log  # noqa: E402

from appliance.lab.api import LabHandle, lab_up  # noqa: E402
from bpf.maps import Maps  # noqa: E402

RESULTS = BENCH_DIR / "results" / "ctsync.json"
SCENARIO = "scenario4"
TARGET_LAG_P99_MS = 50.0
TARGET_ENTRIES_PER_S = 50_000.0
TARGET_BULK_RESYNC_S = 3.0
TARGET_ENTRIES = 100_000
#: at most this share of the source ports of the TCP echo service's endpoints is filled
PROBED_SHARE = 0.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--entries", type=int, default=TARGET_ENTRIES, help="bulk resync volume (default 100000)"
    )
    parser.add_argument(
        "--connections", type=int, default=2000, help="real connections per lag run (default 2000)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="connections/s (default 200)")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each is held (default 2)")
    parser.add_argument(
        "--resync-timeout", type=float, default=180.0, help="bound of the bulk phase (default 180)"
    )
    parser.add_argument(
        "--skip-conntrackd", action="store_true", help="do not run the conntrackd comparison"
    )
    parser.add_argument(
        "--skip-loaded-lag", action="store_true", help="no second lag run with full tables"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    if not 1000 <= args.entries <= 140_000:
        parser.error("--entries must be in [1000, 140000] (node1's full-NAT source ports)")
    if not 10 <= args.connections <= 10_000 or not 10 <= args.rate <= 2000:
        parser.error("--connections in [10, 10000], --rate in [10, 2000]")
    if not 0.1 <= args.hold <= 30:
        parser.error("--hold must be in [0.1, 30]")
    return args


def bring_up(lab: LabHandle, workdir: Path) -> dict[str, Any]:
    """Both daemons up, node1 master and preferred at BIRD, the VIP answering."""
    started = time.monotonic()
    configs = {node: nodes.derive_config(node, workdir) for node in nodes.NODES}
    nodes.start_daemon(lab, "node1", configs["node1"])
    nodes.wait_event(lab, "node1", "dataplane_ready")
    nodes.wait_event(lab, "node1", "ha_state", where=lambda e: e.get("new") == "master")
    nodes.start_daemon(lab, "node2", configs["node2"])
    nodes.wait_event(lab, "node2", "dataplane_ready")
    nodes.wait_event(lab, "node2", "sync_resynced")
    nodes.wait_for("BIRD prefers node1", lambda: nodes.router_prefers(lab, "node1"), 60)
    nodes.wait_for("the VIP answers", lambda: nodes.client_connects(lab), 30)
    return {"configs": {k: str(v) for k, v in configs.items()}, "up_s": time.monotonic() - started}


def sync_status(lab: LabHandle) -> dict[str, Any]:
    return {node: nodes.show_json(lab, node, "sync") for node in nodes.NODES}


def run_triolb(args: argparse.Namespace, lab: LabHandle, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    setup = bring_up(lab, workdir)
    log(f"both daemons up in {setup['up_s']:.1f} s, node1 active")
    maps1 = nodes.open_maps(lab, "node1", 10)
    maps2: Maps | None = nodes.open_maps(lab, "node2", 10)
    try:
        assert maps2 is not None
        log(f"lag: {args.connections} connections at {args.rate}/s")
        out["lag"] = lag.measure(
            lab,
            maps1,
            maps2,
            workdir,
            name="opener-empty",
            count=args.connections,
            rate=args.rate,
            hold=args.hold,
        )
        out["sync_status_after_lag"] = sync_status(lab)
        maps2.close()
        maps2 = None
        nodes.stop_daemon(lab, "node2")
        nodes.flush_dataplane(lab, "node2")
        log(f"node2 stopped and flushed; writing {args.entries} connections into node1")
        spec = (nodes.ECHO_PORT, PROBED_SHARE)
        out["fill"] = fill.fill(maps1, args.entries, *spec)
        synthetic = {bytes(k) for k in fill.keys_of(maps1, args.entries, *spec)}
        log(f"filled in {out['fill']['write_s']} s; starting node2")
        out["bulk"], maps2 = resync.measure(
            lab,
            maps1,
            synthetic,
            Path(setup["configs"]["node2"]),
            timeout_s=args.resync_timeout,
        )
        out["sync_status_after_bulk"] = sync_status(lab)
        if not args.skip_loaded_lag:
            nodes.wait_event(lab, "node2", "ha_state", where=lambda e: e.get("new") == "backup")
            log("lag again, with the tables full")
            out["lag_loaded"] = lag.measure(
                lab,
                maps1,
                maps2,
                workdir,
                name="opener-loaded",
                count=args.connections,
                rate=args.rate,
                hold=args.hold,
            )
            out["sync_status_after_loaded_lag"] = sync_status(lab)
    finally:
        maps1.close()
        if maps2 is not None:
            maps2.close()
        for node in nodes.NODES:
            nodes.stop_daemon(lab, node)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"entries": args.entries}
    lab = lab_up(SCENARIO)
    try:
        log(f"lab {lab.prefix} up")
        with tempfile.TemporaryDirectory(prefix="ctsync-") as tmp:
            workdir = Path(tmp)
            try:
                results["triolb"] = run_triolb(args, lab, workdir)
            except Exception as exc:
                log(f"triolb failed: {type(exc).__name__}: {exc}")
                results["triolb"] = {"error": f"{type(exc).__name__}: {exc}"}
                for node in nodes.NODES:
                    results["triolb"][f"{node}_log_tail"] = lab.log_tail(
                        nodes.daemon_name(node), 15
                    ).splitlines()
            for node in nodes.NODES:
                nodes.flush_dataplane(lab, node)
            if args.skip_conntrackd:
                results["conntrackd"] = {"error": "skipped (--skip-conntrackd)"}
            else:
                results["conntrackd"] = conntrackd.run(
                    lab,
                    workdir,
                    count=args.connections,
                    rate=args.rate,
                    hold=args.hold,
                )
    finally:
        lab.down()
    return results


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures at the top, the targets and whether each is met."""
    triolb = results.get("triolb", {})
    lag_ms = (triolb.get("lag") or {}).get("lag_ms")
    bulk = triolb.get("bulk") or {}
    bulk_s = bulk.get("sync_started_to_all_applied_s") if bulk.get("applied_all") else None
    transfer_s = bulk.get("snapshot_sent_to_all_applied_s") if bulk.get("applied_all") else None
    entries = results.get("entries", 0)
    sent = bulk.get("snapshot_entries") or entries
    rate = round(sent / transfer_s) if transfer_s else None
    out: dict[str, Any] = {
        "entries": entries,
        "lag_ms": None if lag_ms is None else {"p50": lag_ms["p50"], "p99": lag_ms["p99"]},
        "entries_per_s": rate,
        "bulk_resync_s": bulk_s,
        "targets": {
            "lag_p99_ms_le": TARGET_LAG_P99_MS,
            "entries_per_s_ge": TARGET_ENTRIES_PER_S,
            "bulk_resync_s_le": TARGET_BULK_RESYNC_S,
            "bulk_entries": TARGET_ENTRIES,
        },
        "targets_met": {
            "lag_p99_le_50ms": None if lag_ms is None else lag_ms["p99"] <= TARGET_LAG_P99_MS,
            "entries_per_s_ge_50000": None if rate is None else rate >= TARGET_ENTRIES_PER_S,
            "bulk_resync_100k_le_3s": None
            if bulk_s is None or entries < TARGET_ENTRIES
            else bulk_s <= TARGET_BULK_RESYNC_S,
        },
    }
    peer = results.get("conntrackd") or {}
    if peer.get("lag_ms"):
        out["conntrackd_lag_ms"] = {"p50": peer["lag_ms"]["p50"], "p99": peer["lag_ms"]["p99"]}
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def described(results: dict[str, Any]) -> dict[str, Any]:
        top = headline(results)
        top.update({k: v for k, v in results.items() if k not in top})
        top["notes"] = [
            "lag: real TCP connections client -> VIP:9000 (full NAT via node1); from connect() "
            "returning on the client to the forward entry present, flagged remote, in node2's "
            "pinned conntrack map, probed every ~1 ms by the bench (CLOCK_MONOTONIC)",
            "bulk: the 100,000 connections are synthetic local forward entries (with reply "
            "entries) of node1's configured full-NAT services, with valid endpoint indexes, "
            "written into node1's pinned map by the bench (real ones are too slow to open); "
            "bulk_resync_s = node2's sync_started -> all applied in node2's map; "
            "entries_per_s = snapshot entries (the 100,000 plus the lag run's leftovers) / "
            "(node1's sync_snapshot_sent -> all applied)",
            "a UDP echo service was added to the example configs: with one full-NAT source "
            "address a node has 16,128 source ports per endpoint, so the example's 6 TCP "
            "endpoint/port pairs hold at most 96,768 connections",
            "everything (client, router, both nodes, bench) shares the machine's CPUs",
        ]
        top["method"] = {
            "connections": args.connections,
            "rate_per_s": args.rate,
            "hold_s": args.hold,
            "probe_interval_ms": 1.0,
        }
        top["machine"] = {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        }
        return top

    return run_and_report(
        lambda: run(args),
        on_error={"entries": args.entries},
        output=args.output,
        finish=described,
        name="ctsync",
    )


if __name__ == "__main__":
    sys.exit(main())
