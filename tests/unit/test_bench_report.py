"""bench/report.py builds the benchmark report from result JSON: tables of triolb beside each
peer with ratios, targets, a line for a missing or failed benchmark, and PNG charts. Synthetic
result files in tmp_path; no benchmark runs here."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MACHINE = {"cpus": 2, "kernel": "6.1.0-test", "python": "3.11.2"}


def load_report() -> ModuleType:
    """bench/report.py as a module (bench/ is not a package; the script puts itself on the
    path to import its report_parts)."""
    spec = importlib.util.spec_from_file_location("bench_report", BENCH_DIR / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


report = load_report()


def part(name: str) -> ModuleType:
    """A module of bench/report_parts (importable once report.py has put bench/ on the path)."""
    return importlib.import_module(f"report_parts.{name}")


def bgp_result() -> dict[str, Any]:
    return {
        "prefixes": 1000,
        "triolb": {"seconds": 5.0, "rss_mb": 100.0, "prefixes_per_s": 200, "cpu_s": 4.0,
                   "loop_lag_p99_ms": 7.5, "timeout": False, "runs_seconds": [5.0, 6.0, 4.0],
                   "runs_rss_mb": [100.0, 101.0, 99.0]},
        "exabgp": {"seconds": 20.0, "rss_mb": 400.0, "prefixes_per_s": 50, "cpu_s": 16.0,
                   "timeout": False, "runs_seconds": [20.0, None, 21.0]},
        "gobgp": {"error": "gobgpd is not installed"},
        "machine": MACHINE,
        "repeat": 3,
        "bird": {"version": "2.0.12", "load_s": 0.1, "rss_mb": 20.0},
        "total_wall_s": 60.0,
    }  # fmt: skip


def dataplane_result() -> dict[str, Any]:
    def cps_run(cps: float, p99_us: int) -> dict[str, Any]:
        return {"cps": cps, "latency_us": {"p50": 1000, "p99": p99_us}}

    return {
        "throughput_gbps": {"triolb": 9.0, "nftables": 8.0, "direct": 10.0},
        "cps": {"triolb": 6000.0, "nftables": 5000.0},
        "cps_direct": 6100.0,
        "targets_met": {"throughput_vs_direct_ge_0.9": True,
                        "throughput_vs_nftables_ge_1.0": True, "cps_vs_nftables_ge_1.0": True},
        "ratios": {"throughput_vs_direct": 0.9, "throughput_vs_nftables": 1.125,
                   "cps_vs_nftables": 1.2},
        "runs": {
            "direct": {"throughput": [{"gbps": 10.0}, {"gbps": 9.5}],
                       "cps": [cps_run(6100.0, 5000), cps_run(6000.0, 7000)]},
            "nftables": {"throughput": [{"gbps": 8.0}, {"error": "OSError: x"}],
                         "cps": [cps_run(5000.0, 6000)]},
            "triolb": {"throughput": [{"gbps": 9.0}, {"gbps": 9.2}],
                       "cps": [cps_run(6000.0, 4000), cps_run(5900.0, 6000)]},
        },
        "repeat": 2,
        "method": {"throughput": "iperf3 -t 5", "cps": "wrk -t 2 -c 32"},
        "machine": MACHINE,
    }  # fmt: skip


def failover_result() -> dict[str, Any]:
    def trials(gaps: list[float | None]) -> list[dict[str, Any]]:
        return [{"error": "TrialError: x"} if g is None else {"gap_ms": g} for g in gaps]

    return {
        "advert_ms": 20,
        "trials": 3,
        "triolb_gap_ms": {"median": 63.0, "max": 65.0, "min": 61.0, "mean": 63.0,
                          "gaps": [61.0, 65.0], "failed": 1},
        "triolb": {"election_median_ms": 73.0, "announce_median_ms": -0.5,
                   "trials": trials([61.0, None, 65.0])},
        "keepalived_gap_ms": {"median": 63.5, "max": 66.0, "min": 61.5, "mean": 63.6,
                              "gaps": [61.5, 63.5, 66.0], "failed": 0},
        "keepalived": {"election_median_ms": 72.0, "announce_median_ms": 0.2,
                       "trials": trials([61.5, 63.5, 66.0])},
        "targets_met": {"median_le_150ms": True, "max_le_250ms": True,
                        "median_le_keepalived": True},
        "method": {"probe_interval_ms": 1.0, "cut_phase_ms": 10.0},
        "machine": MACHINE,
    }  # fmt: skip


def ctsync_result() -> dict[str, Any]:
    def lag(p50: float, p99: float) -> dict[str, Any]:
        return {
            "lag_ms": {"p50": p50, "p90": p50 * 2, "p99": p99, "max": p99 * 2, "min": 0.1},
            "missing_on_peer": 0,
        }

    return {
        "entries": 100000,
        "lag_ms": {"p50": 3.0, "p99": 10.0},
        "entries_per_s": 80000,
        "bulk_resync_s": 1.5,
        "targets": {"lag_p99_ms_le": 50.0, "entries_per_s_ge": 50000.0,
                    "bulk_resync_s_le": 3.0, "bulk_entries": 100000},
        "targets_met": {"lag_p99_le_50ms": True, "entries_per_s_ge_50000": True,
                        "bulk_resync_100k_le_3s": True},
        "triolb": {"lag": lag(3.0, 10.0), "lag_loaded": lag(3.5, 30.0)},
        "conntrackd": {**lag(0.15, 5.0), "version": "v1.4.7"},
        "notes": ["lag: from connect() to the entry on node2"],
        "method": {"connections": 2000, "rate_per_s": 200.0, "hold_s": 2.0},
        "machine": MACHINE,
    }  # fmt: skip


RESULTS = {
    "bgp_ingest": bgp_result,
    "dataplane": dataplane_result,
    "failover_l2": failover_result,
    "ctsync": ctsync_result,
}


def write_results(directory: Path, names: list[str] | None = None) -> None:
    for name, make in RESULTS.items():
        if names is None or name in names:
            (directory / f"{name}.json").write_text(json.dumps(make(), indent=2))


def section_text(text: str, title_start: str) -> str:
    """The Markdown of the section whose heading starts with ``title_start``."""
    start = text.index(f"## {title_start}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def row(section: str, label: str) -> list[str]:
    """The cells of the table row labelled ``label``."""
    for line in section.splitlines():
        if line.startswith(f"| {label} |"):
            return [cell.strip() for cell in line.strip("|").split(" | ")]
    raise AssertionError(f"no row {label!r} in:\n{section}")


def build(tmp_path: Path, *, charts: bool = False) -> str:
    output = tmp_path / "report.md"
    report.report(tmp_path, output, draw=charts)
    return output.read_text()


def test_bgp_table_puts_triolb_beside_each_peer_with_ratios(tmp_path: Path) -> None:
    write_results(tmp_path)
    bgp = section_text(build(tmp_path), "BGP")
    assert row(bgp, "metric") == [
        "metric", "triolb", "ExaBGP", "triolb ÷ ExaBGP", "GoBGP", "triolb ÷ GoBGP", "better",
    ]  # fmt: skip
    time_row = row(bgp, "ingest time (Established → all prefixes)")
    assert time_row[1:4] == ["5.00 s", "20.0 s", "0.25x (triolb better)"]
    assert time_row[4:] == ["failed", "—", "lower"]
    assert row(bgp, "prefixes per second")[3] == "4.00x (triolb better)"
    assert row(bgp, "event-loop lag p99 during ingest (triolb only)")[1:4] == ["7.50 ms", "—", "—"]
    assert "GoBGP failed: gobgpd is not installed" in bgp
    assert "ExaBGP 20.0, failed, 21.0" in bgp
    assert "Machine: 2 CPUs, kernel 6.1.0-test" in bgp


def test_bgp_timeout_is_said(tmp_path: Path) -> None:
    data = bgp_result()
    data["exabgp"] = {"seconds": None, "timeout": True, "received": 400}
    data["timeout_per_receiver_s"] = 600.0
    (tmp_path / "bgp_ingest.json").write_text(json.dumps(data))
    bgp = section_text(build(tmp_path), "BGP")
    assert row(bgp, "peak RSS (process tree)")[2:4] == ["timeout", "—"]
    assert row(bgp, "event-loop lag p99 during ingest (triolb only)")[2] == "—"
    assert "ExaBGP timed out after 600.0 s with 400 of 1,000 prefixes" in bgp


def test_dataplane_table_and_targets(tmp_path: Path) -> None:
    write_results(tmp_path)
    section = section_text(build(tmp_path), "Dataplane")
    throughput = row(section, "throughput (iperf3, 1 stream)")
    assert throughput[1:] == [
        "9.00 Gbit/s", "8.00 Gbit/s", "1.12x (triolb better)",
        "10.0 Gbit/s", "0.90x (direct better)", "higher",
    ]  # fmt: skip
    cps = row(section, "new connections per second (wrk)")
    assert cps[4:6] == ["6,100 /s", "0.98x (parity)"]
    latency = row(section, "request latency p99 during the cps runs")
    assert latency[1:3] == ["5.00 ms", "6.00 ms"]  # medians of the runs, µs -> ms
    assert "- throughput ≥ 0.9 x direct: 0.900x — **met**" in section


def test_failover_table_parity_and_targets(tmp_path: Path) -> None:
    write_results(tmp_path)
    section = section_text(build(tmp_path), "L2 failover")
    assert row(section, "gap median")[1:] == ["63.0 ms", "63.5 ms", "0.99x (parity)", "lower"]
    assert row(section, "gap max")[3] == "0.98x (parity)"
    # a negative announcement (before the advert) has no meaningful ratio
    announce = row(section, "announcement (node2's first advert → its GARP), median")
    assert announce[1:4] == ["-0.50 ms", "0.20 ms", "—"]
    assert row(section, "failed trials")[1:3] == ["1", "0"]
    assert "- gap median ≤ keepalived's: 63.0 ms vs 63.5 ms — **met**" in section


def test_ctsync_table_and_unmet_target(tmp_path: Path) -> None:
    data = ctsync_result()
    data["targets_met"]["entries_per_s_ge_50000"] = False
    data["entries_per_s"] = 40000
    (tmp_path / "ctsync.json").write_text(json.dumps(data))
    section = section_text(build(tmp_path), "Conntrack sync")
    assert row(section, "lag p50")[1:4] == ["3.00 ms", "0.15 ms", "20.0x (conntrackd better)"]
    assert row(section, "lag p99")[3] == "2.00x (conntrackd better)"
    assert row(section, "lag p99 with 100,000 entries in both tables")[1:3] == ["30.0 ms", "—"]
    assert row(section, "bulk transfer rate")[1] == "40,000 entries/s"
    assert "- transfer ≥ 50,000 entries/s: 40,000 entries/s — **not met**" in section
    assert "- lag p99 ≤ 50.0 ms: 10.0 ms — **met**" in section


def test_missing_failed_and_unreadable_results_get_a_line(tmp_path: Path) -> None:
    write_results(tmp_path, ["bgp_ingest"])
    (tmp_path / "dataplane.json").write_text(
        json.dumps({"throughput_gbps": None, "cps": None, "error": "RuntimeError: no lab"})
    )
    (tmp_path / "failover_l2.json").write_text("{not json")
    text = build(tmp_path)
    assert "**missing**: `ctsync.json`: no result file" in section_text(text, "Conntrack")
    dataplane = section_text(text, "Dataplane")
    assert "**failed**: the benchmark failed: RuntimeError: no lab" in dataplane
    assert "| metric |" not in dataplane
    assert "**unreadable**" in section_text(text, "L2 failover")
    assert "| ingest time" in section_text(text, "BGP")


def test_an_unexpected_shape_is_a_line_not_a_crash(tmp_path: Path) -> None:
    data = dataplane_result()
    data["errors"] = ["triolb"]  # a list where the bench writes an object
    (tmp_path / "dataplane.json").write_text(json.dumps(data))
    section = section_text(build(tmp_path), "Dataplane")
    assert "**unreadable**: `dataplane.json` has an unexpected shape: AttributeError" in section


def test_a_peer_that_could_not_run_is_a_note_not_a_crash(tmp_path: Path) -> None:
    data = failover_result()
    data["keepalived_gap_ms"] = {"median": None, "max": None, "error": "keepalived missing"}
    del data["keepalived"]
    (tmp_path / "failover_l2.json").write_text(json.dumps(data))
    section = section_text(build(tmp_path), "L2 failover")
    assert row(section, "gap median")[1:4] == ["63.0 ms", "failed", "—"]
    assert "keepalived could not run: keepalived missing" in section


def test_raw_json_is_linked_and_included(tmp_path: Path) -> None:
    write_results(tmp_path, ["ctsync"])
    section = section_text(build(tmp_path), "Conntrack")
    assert "Raw JSON: [ctsync.json](ctsync.json)" in section
    assert '"bulk_resync_s": 1.5' in section


def test_charts_are_png_files_linked_from_the_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_results(tmp_path)
    text = build(tmp_path, charts=True)
    for name in ("bgp_ingest.png", "dataplane.png", "failover_l2_gaps.png", "ctsync_lag.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE, name
        assert f"]({name})" in text


def test_without_matplotlib_the_report_says_charts_were_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_results(tmp_path, ["failover_l2"])
    (tmp_path / "failover_l2_gaps.png").write_bytes(PNG_SIGNATURE)  # from an older run
    monkeypatch.setattr(report.charts, "available", lambda: False)
    text = build(tmp_path, charts=True)
    assert "Charts skipped: matplotlib is not installed" in text
    assert "failover_l2_gaps.png" not in text
    assert not (tmp_path / "failover_l2_gaps.png").exists()


def test_failover_chart_keeps_each_trial_in_place() -> None:
    [chart] = part("failover").charts(failover_result())
    [panel] = chart.panels
    assert panel.kind == "lines"
    assert panel.categories == ["1", "2", "3"]
    assert [s.values for s in panel.series] == [[61.0, None, 65.0], [61.5, 63.5, 66.0]]


def test_ctsync_chart_uses_raw_lags_when_the_bench_keeps_them() -> None:
    ctsync = part("ctsync")
    [chart] = ctsync.charts(ctsync_result())
    assert chart.panels[0].kind == "bars"
    assert chart.panels[0].categories == ["p50", "p90", "p99", "max"]
    data = ctsync_result()
    data["triolb"]["lag"]["lags_ms"] = [1.0, 2.0, 3.0]
    [chart] = ctsync.charts(data)
    assert chart.panels[0].kind == "cdf"
    assert [s.values for s in chart.panels[0].series] == [[1.0, 2.0, 3.0]]


def test_ratio_and_verdict_rules() -> None:
    model = part("model")
    fmt, fmt_ratio, ratio = model.fmt, model.fmt_ratio, model.ratio
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(-0.5, 0.2) is None
    assert ratio("failed", 1.0) is None
    assert ratio(1.0, None) is None
    assert fmt_ratio(0.5, "higher", "nftables") == "0.50x (nftables better)"
    assert fmt_ratio(1.015, "lower", "keepalived") == "1.01x (parity)"
    assert fmt(1348.3, "MB") == "1,348 MB"
    assert fmt(True) == "true"


def test_script_runs_on_its_own(tmp_path: Path) -> None:
    write_results(tmp_path, ["dataplane"])
    done = subprocess.run(
        [sys.executable, str(BENCH_DIR / "report.py"), "--results", str(tmp_path), "--no-charts"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dataplane: ok" in done.stdout
    assert "bgp_ingest: missing" in done.stdout
    assert (tmp_path / "report.md").exists()
