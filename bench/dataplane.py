"""Dataplane benchmark: throughput and new connections/s through triolb, nftables, and none.

On the scenario-2 lab (client 203.0.113.10 behind the router; node1 192.168.80.252 the load
balancer; endpoints 192.168.80.101-103) the client reaches the VIP 198.51.100.10 (routed to
node1) through triolb's eBPF dataplane, then through an nftables DNAT table with kernel
conntrack in node1, and reaches ep1 directly with no load balancer. For each: iperf3 throughput
(one stream, VIP:5201 -> ep1) and short TCP connections per second (wrk with ``Connection:
close`` against nginx in the three endpoints, VIP:80). Prints JSON:

    {"throughput_gbps": {"triolb", "nftables", "direct"}, "cps": {"triolb", "nftables"},
     "targets_met": {...}, "runs": {...}, "method": {...}, "machine": {...}}

and writes it to bench/results/dataplane.json. Progress goes to stderr. Needs root (network
namespaces). See bench/README.md.

    .venv/bin/python bench/dataplane.py [--repeat N] [--variants direct,nftables,triolb]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(1, str(REPO_DIR))  # the project (also installed editable in .venv)

from benchrun import run_and_report  # noqa: E402
from dataplane_bench import triolb  # noqa: E402
from dataplane_bench.cps import CpsSpec, NginxEndpoints, run_cps, write_wrk_script  # noqa: E402
from dataplane_bench.paths import SCENARIO, log, prepare_lab  # noqa: E402
from dataplane_bench.throughput import ThroughputSpec, run_throughput  # noqa: E402
from dataplane_bench.variants import VARIANT_NAMES, Variant, make_variant  # noqa: E402

from appliance.lab.api import LabHandle, lab_up  # noqa: E402

RESULTS = BENCH_DIR / "results" / "dataplane.json"
MAX_REPEAT = 10
#: the issue's targets, as ratios of triolb's figure to the other's
TARGET_THROUGHPUT_VS_DIRECT = 0.9
TARGET_THROUGHPUT_VS_NFTABLES = 1.0
TARGET_CPS_VS_NFTABLES = 1.0
#: the variants whose connections/s are headline figures (direct's is a reference)
LOAD_BALANCERS = ("triolb", "nftables")
RUN_ERRORS = (OSError, RuntimeError, ValueError, KeyError, subprocess.SubprocessError)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each measurement; median (default 3)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANT_NAMES),
        help="comma-separated, run in this order (default direct,nftables,triolb)",
    )
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 -t (default 5)")
    parser.add_argument("--omit", type=int, default=1, help="iperf3 -O warm-up (default 1)")
    parser.add_argument("--streams", type=int, default=1, help="iperf3 -P (default 1)")
    parser.add_argument(
        "--affinity",
        default="0,0",
        help="CPUs of the iperf3 client and server (iperf3 -A), or 'none'; on one CPU the "
        "whole path's cost is serialized there (default 0,0)",
    )
    parser.add_argument("--cps-seconds", type=int, default=5, help="wrk -d (default 5)")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk -t (default 2)")
    parser.add_argument(
        "--wrk-connections", type=int, default=32, help="wrk -c, concurrent (default 32)"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=90.0,
        help=f"seconds to wait for triolb's {triolb.DATAPLANE_READY!r} (default 90)",
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"JSON file (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    bounds = {
        "repeat": (1, MAX_REPEAT),
        "seconds": (1, 60),
        "omit": (0, 10),
        "streams": (1, 16),
        "cps_seconds": (1, 60),
        "wrk_threads": (1, 16),
        "wrk_connections": (1, 1024),
        "ready_timeout": (1, 600),
    }
    for name, (low, high) in bounds.items():
        if not low <= getattr(args, name) <= high:
            parser.error(f"--{name.replace('_', '-')} must be in [{low}, {high}]")
    if args.wrk_connections < args.wrk_threads:
        parser.error("--wrk-connections must be at least --wrk-threads")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if not names or len(set(names)) != len(names) or set(names) - set(VARIANT_NAMES):
        parser.error(f"--variants: choose from {','.join(VARIANT_NAMES)}")
    args.names = names
    args.cpu_pair = None
    if args.affinity != "none":
        try:
            client_cpu, server_cpu = (int(part) for part in args.affinity.split(","))
        except ValueError:
            parser.error("--affinity: two CPU numbers 'CLIENT,SERVER' or 'none'")
        cpus = os.cpu_count() or 1
        if not (0 <= client_cpu < cpus and 0 <= server_cpu < cpus):
            parser.error(f"--affinity: CPUs are 0..{cpus - 1} here")
        args.cpu_pair = (client_cpu, server_cpu)
    return args


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [float(run[key]) for run in runs if key in run]
    return round(statistics.median(values), 3 if key == "gbps" else 1) if values else None


def measure(
    lab: LabHandle,
    variant: Variant,
    args: argparse.Namespace,
    wrk_script: Path,
) -> dict[str, Any]:
    """``--repeat`` throughput runs, then ``--repeat`` connection runs, on a set-up variant."""
    detail: dict[str, Any] = {"throughput": [], "cps": []}
    spec = ThroughputSpec(args.seconds, args.omit, args.streams, args.cpu_pair)
    for index in range(args.repeat):
        label = f"{variant.name}-{index + 1}"
        try:
            entry = run_throughput(lab, variant.target, spec, label)
            entry.update(variant.between_runs(lab))
        except RUN_ERRORS as exc:
            entry = {"error": f"{type(exc).__name__}: {exc}"}
        detail["throughput"].append(entry)
        log(f"{label} throughput: {json.dumps(entry)}")
    cps = CpsSpec(args.cps_seconds, args.wrk_threads, args.wrk_connections)
    for index in range(args.repeat):
        label = f"{variant.name}-{index + 1}"
        try:
            entry = run_cps(lab, variant.target, cps, wrk_script, label)
            entry.update(variant.between_runs(lab))
        except RUN_ERRORS as exc:
            entry = {"error": f"{type(exc).__name__}: {exc}"}
        detail["cps"].append(entry)
        log(f"{label} cps: {json.dumps(entry)}")
    return detail


def run_variant(
    lab: LabHandle, variant: Variant, args: argparse.Namespace, workdir: Path, wrk_script: Path
) -> dict[str, Any]:
    """Set up, measure, tear down (always). A failed set-up is the variant's ``error``."""
    log(f"{variant.name}: setting up")
    try:
        try:
            setup = variant.setup(lab, workdir / variant.name)
        except (*RUN_ERRORS, triolb.TriolbUnavailable) as exc:
            error: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"}
            if variant.name == "triolb":
                error["log_tail"] = triolb.log_tail(lab)
            log(f"{variant.name}: {error['error']}")
            return error
        log(f"{variant.name}: ready, target {variant.target}")
        return {"setup": setup, **measure(lab, variant, args, wrk_script)}
    finally:
        variant.teardown(lab)


def run(args: argparse.Namespace) -> dict[str, Any]:
    details: dict[str, dict[str, Any]] = {}
    lab = lab_up(SCENARIO, start_endpoints=False, start_router=False)
    try:
        log(f"lab {lab.prefix} up")
        prepare_lab(lab)
        with tempfile.TemporaryDirectory(prefix="dataplane-bench-") as tmp:
            workdir = Path(tmp)
            nginx = NginxEndpoints(lab, workdir / "nginx")
            try:
                nginx.start()
                wrk_script = write_wrk_script(workdir)
                for name in args.names:
                    variant = make_variant(name, args.ready_timeout)
                    details[name] = run_variant(lab, variant, args, workdir, wrk_script)
            finally:
                nginx.stop()
    finally:
        lab.down()
    return summarize(details)


def summarize(details: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline figures (medians) first, then errors, then every run."""
    throughput = {
        name: median_of(details.get(name, {}).get("throughput", []), "gbps")
        for name in ("triolb", "nftables", "direct")
    }
    cps = {name: median_of(details.get(name, {}).get("cps", []), "cps") for name in LOAD_BALANCERS}
    results: dict[str, Any] = {
        "throughput_gbps": throughput,
        "cps": cps,
        "cps_direct": median_of(details.get("direct", {}).get("cps", []), "cps"),
    }
    errors = {name: detail["error"] for name, detail in details.items() if "error" in detail}
    if errors:
        results["errors"] = errors
    results["runs"] = details
    return results


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours is not None and theirs else None


def targets(results: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, bool] | None]:
    """triolb's ratios to the others, and the issue's targets (None without triolb figures)."""
    throughput = results.get("throughput_gbps", {})
    cps = results.get("cps", {})
    ratios = {
        "throughput_vs_direct": ratio(throughput.get("triolb"), throughput.get("direct")),
        "throughput_vs_nftables": ratio(throughput.get("triolb"), throughput.get("nftables")),
        "cps_vs_nftables": ratio(cps.get("triolb"), cps.get("nftables")),
    }
    wanted = {
        "throughput_vs_direct": TARGET_THROUGHPUT_VS_DIRECT,
        "throughput_vs_nftables": TARGET_THROUGHPUT_VS_NFTABLES,
        "cps_vs_nftables": TARGET_CPS_VS_NFTABLES,
    }
    met = {
        f"{key}_ge_{wanted[key]}": value >= wanted[key]
        for key, value in ratios.items()
        if value is not None
    }
    return ratios, (met or None)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def described(results: dict[str, Any]) -> dict[str, Any]:
        ratios, met = targets(results)
        ordered: dict[str, Any] = {
            key: results.pop(key)
            for key in ("throughput_gbps", "cps", "cps_direct")
            if key in results
        }
        ordered["targets_met"] = met
        ordered["ratios"] = ratios
        ordered.update(results)
        ordered["repeat"] = args.repeat
        ordered["method"] = {
            "variants": args.names,
            "throughput": f"iperf3 -t {args.seconds} -O {args.omit} -P {args.streams} -J "
            f"(client, server CPUs: {args.affinity}), "
            "client -> VIP:5201 -> ep1 (direct: client -> ep1); Gbit/s = "
            "end.sum_received.bits_per_second / 1e9; median of the runs",
            "cps": f"wrk -t {args.wrk_threads} -c {args.wrk_connections} -d {args.cps_seconds}s "
            "with 'Connection: close' -> VIP:80 -> nginx (1 worker, keepalive_timeout 0) in "
            "ep1..ep3; each request is a new TCP connection; median of the runs. cps_direct: "
            "client -> ep1's nginx alone, a reference for what the tools can do",
            "nat": "mode default (DNAT only); endpoints route 203.0.113.0/24 back via node1",
            "nftables": "table ip dpbench, nat prerouting DNAT (numgen inc mod 3 for web), "
            "kernel conntrack; conntrack flushed between runs",
            "triolb": "daemon in node1, scenario-3 example without bgp, services iperf and web "
            f"(round robin); measured after the {triolb.DATAPLANE_READY!r} log event",
            "vip_route": "static at the router: 198.51.100.10/32 via 192.168.80.252",
        }
        ordered["machine"] = {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python": platform.python_version(),
        }
        return ordered

    return run_and_report(
        lambda: run(args),
        on_error={"throughput_gbps": None, "cps": None},
        output=args.output,
        finish=described,
        name="dataplane",
    )


if __name__ == "__main__":
    sys.exit(main())
