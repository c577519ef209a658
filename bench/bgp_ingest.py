"""BGP ingest benchmark: how fast do triolb, ExaBGP and GoBGP take in a full table?

A BIRD 2 router in a lab namespace originates N distinct IPv4 prefixes (static blackholes,
default 1,000,000) and exports them by eBGP to a receiver in another namespace. For each
receiver, one after another, on a fresh BGP session from the same loaded BIRD, it measures the
seconds from Established to all N prefixes in the receiver's Adj-RIB-In, the peak RSS of the
receiver's processes, and for triolb the event-loop lag p99 during ingest. Prints JSON:

    {"prefixes": N, "triolb": {"seconds", "rss_mb", "loop_lag_p99_ms"},
     "exabgp": {"seconds", "rss_mb"}, "gobgp": {"seconds", "rss_mb"}, ...extras}

and writes it to bench/results/bgp_ingest.json. Progress goes to stderr. Needs root (network
namespaces). See bench/README.md.

    .venv/bin/python bench/bgp_ingest.py [--prefixes N] [--receivers triolb,exabgp,gobgp]
                                         [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(1, str(REPO_DIR))  # the project (also installed editable in .venv)

from benchrun import run_and_report  # noqa: E402
from bgp_ingest import install  # noqa: E402
from bgp_ingest.prefixes import MAX_PREFIXES  # noqa: E402
from bgp_ingest.receivers import RECEIVERS, Receiver, ReceiverUnavailable, RunSpec  # noqa: E402
from bgp_ingest.router import BirdRouter  # noqa: E402
from bgp_ingest.runner import log, run_receiver  # noqa: E402

from appliance.lab.api import lab_up  # noqa: E402

RESULTS = BENCH_DIR / "results" / "bgp_ingest.json"
SCENARIO = "scenario2"  # router 192.168.80.254 (AS 65101), node1 192.168.80.252 (AS 65100)
MAX_TIMEOUT = 3600.0
MAX_REPEAT = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefixes", type=int, default=1_000_000, help="N (default 1000000)")
    parser.add_argument(
        "--receivers",
        default=",".join(RECEIVERS),
        help="comma-separated, run in this order (default triolb,exabgp,gobgp)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per receiver (default 600)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per receiver, interleaved; the median run is reported (default 1, max 10)",
    )
    parser.add_argument(
        "--exabgp-version", default=install.EXABGP_VERSION, help="pinned ExaBGP from PyPI"
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.prefixes <= MAX_PREFIXES:
        parser.error(f"--prefixes must be in [1, {MAX_PREFIXES}]")
    if not 1 <= args.repeat <= MAX_REPEAT:
        parser.error(f"--repeat must be in [1, {MAX_REPEAT}]")
    if not 1 <= args.timeout <= MAX_TIMEOUT:
        parser.error(f"--timeout must be in [1, {MAX_TIMEOUT:.0f}]")
    names = [n.strip() for n in args.receivers.split(",") if n.strip()]
    unknown = [n for n in names if n not in RECEIVERS]
    if unknown or not names or len(set(names)) != len(names):
        parser.error(f"--receivers: choose from {','.join(RECEIVERS)} (got {args.receivers!r})")
    args.receiver_names = names
    return args


def make_receiver(name: str, args: argparse.Namespace) -> Receiver:
    if name == "exabgp":
        return RECEIVERS[name](version=args.exabgp_version)  # type: ignore[call-arg]
    return RECEIVERS[name]()


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One run: itself. Several: the run with the median ``seconds`` among those that
    finished, plus every run's seconds and rss_mb."""
    if len(entries) == 1:
        return entries[0]
    finished = sorted(
        (e for e in entries if isinstance(e.get("seconds"), int | float)),
        key=lambda e: float(e["seconds"]),
    )
    chosen = dict(finished[(len(finished) - 1) // 2] if finished else entries[-1])
    chosen["runs"] = len(entries)
    chosen["runs_seconds"] = [e.get("seconds") for e in entries]
    chosen["runs_rss_mb"] = [e.get("rss_mb") for e in entries]
    chosen["runs_failed"] = len(entries) - len(finished)
    return chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"prefixes": args.prefixes}
    # Installs and availability first, outside the lab.
    install.ensure_debian(["bird2"])
    ready: list[tuple[str, Receiver, dict[str, Any]]] = []
    for name in args.receiver_names:
        receiver = make_receiver(name, args)
        try:
            info = receiver.prepare()
        except ReceiverUnavailable as exc:
            log(f"{name}: {exc}")
            results[name] = {"error": str(exc)}
            continue
        ready.append((name, receiver, info))
    results["machine"] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    results["timeout_per_receiver_s"] = args.timeout
    results["repeat"] = args.repeat
    if not ready:
        return results
    lab = lab_up(SCENARIO, start_endpoints=False, start_router=False)
    try:
        router = BirdRouter(lab, args.prefixes)
        load_timeout = 120.0 + args.prefixes / 5000
        log(f"lab {lab.prefix}: starting BIRD with {args.prefixes} static routes")
        load_seconds = router.start(load_timeout)
        results["bird"] = {
            "version": router.version(),
            "load_s": round(load_seconds, 2),
            "rss_mb": router.rss_mb(),
        }
        spec = RunSpec(expect=args.prefixes, timeout=args.timeout, workdir=lab.log_dir)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _r, _i in ready}
        for round_number in range(args.repeat):
            for name, receiver, info in ready:
                label = name if args.repeat == 1 else f"{name} (run {round_number + 1})"
                log(f"{label}: starting (timeout {args.timeout:.0f}s)")
                try:
                    if round_number:
                        receiver = make_receiver(name, args)  # fresh state for every run
                        receiver.prepare()
                    entry = run_receiver(receiver, lab, router, spec)
                except (
                    OSError,
                    RuntimeError,
                    ValueError,
                    subprocess.SubprocessError,
                    ReceiverUnavailable,
                ) as exc:
                    entry = {"seconds": None, "error": f"{type(exc).__name__}: {exc}"}
                entry.update(info)
                runs[name].append(entry)
                log(f"{label}: {json.dumps(entry)}")
        for name, entries in runs.items():
            results[name] = summarize(entries)
    finally:
        lab.down()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def receivers_first(results: dict[str, Any]) -> dict[str, Any]:
        ordered = {"prefixes": results.pop("prefixes")}
        ordered.update({n: results.pop(n) for n in args.receiver_names if n in results})
        ordered.update(results)
        return ordered

    return run_and_report(
        lambda: run(args),
        on_error={"prefixes": args.prefixes},
        output=args.output,
        finish=receivers_first,
        name="bgp_ingest",
    )


if __name__ == "__main__":
    sys.exit(main())
