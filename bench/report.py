"""Benchmark report: bench/results/*.json -> bench/results/report.md (+ PNG charts).

For each benchmark (bgp_ingest, ctsync, dataplane, failover_l2) a short line on what was
measured and how, a table with triolb's figures beside each peer's and the ratio, the targets
and whether they are met, the machine, the charts and the raw JSON. A benchmark whose JSON is
missing, unreadable or holds a top-level ``error`` gets a line saying so. Charts need
matplotlib (a test extra; Agg backend, no display); without it the report says they were
skipped. Runs no benchmark and touches no network.

    .venv/bin/python bench/report.py [--results DIR] [--output FILE] [--no-charts]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(1, str(BENCH_DIR))

from report_parts import bgp, charts, ctsync, dataplane, failover  # noqa: E402
from report_parts.markdown import section_lines  # noqa: E402
from report_parts.model import Section, Status, machine_line  # noqa: E402

RESULTS = BENCH_DIR / "results"


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's result file stem, its title and how its JSON becomes a section."""

    name: str
    title: str
    build: Callable[[Mapping[str, Any]], Section]


BENCHMARKS = (
    Benchmark(bgp.NAME, bgp.TITLE, bgp.section),
    Benchmark(ctsync.NAME, ctsync.TITLE, ctsync.section),
    Benchmark(dataplane.NAME, dataplane.TITLE, dataplane.section),
    Benchmark(failover.NAME, failover.TITLE, failover.section),
)


@dataclass
class Loaded:
    """A result file: its data (None when missing or unreadable), text and age."""

    path: Path
    data: Mapping[str, Any] | None
    text: str | None
    problem: str
    written: str


def load(path: Path) -> Loaded:
    """Read one result; a missing or unreadable file is reported, not raised."""
    if not path.exists():
        return Loaded(path, None, None, "no result file (the benchmark was not run)", "")
    written = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
    stamp = written.strftime("%Y-%m-%d %H:%M UTC")
    try:
        text = path.read_text()
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Loaded(path, None, None, f"unreadable: {type(exc).__name__}: {exc}", stamp)
    if not isinstance(data, dict):
        return Loaded(path, None, text, "unreadable: not a JSON object", stamp)
    return Loaded(path, data, text, "", stamp)


def problem(bench: Benchmark, status: Status, text: str) -> Section:
    """A section that says only what went wrong."""
    return Section(bench.name, bench.title, status=status, problem=text)


def build_section(bench: Benchmark, loaded: Loaded) -> Section:
    """The section of one benchmark, whatever state its result is in."""
    if loaded.data is None:
        status: Status = "missing" if not loaded.path.exists() else "unreadable"
        return problem(bench, status, f"`{loaded.path.name}`: {loaded.problem}")
    if loaded.data.get("error"):
        section = problem(bench, "failed", f"the benchmark failed: {loaded.data['error']}")
    else:
        try:
            section = bench.build(loaded.data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a shape we do not know
            why = f"{type(exc).__name__}: {exc}"
            section = problem(
                bench, "unreadable", f"`{loaded.path.name}` has an unexpected shape: {why}"
            )
    section.machine = provenance(loaded)
    return section


def provenance(loaded: Loaded) -> str:
    """The machine, when the result was written and how long the run took."""
    assert loaded.data is not None
    parts = [machine_line(loaded.data)]
    if loaded.written:
        parts.append(f"result written {loaded.written}")
    if loaded.data.get("total_wall_s") is not None:
        parts.append(f"the run took {loaded.data['total_wall_s']} s")
    return "; ".join(part for part in parts if part)


def draw_charts(section: Section, directory: Path, enabled: bool) -> list[str]:
    """Write the section's charts; returns the file names written. A chart that fails to
    draw becomes a note (the report is still written)."""
    written = []
    for chart in section.charts:
        stale = directory / chart.filename
        if not enabled:
            stale.unlink(missing_ok=True)  # never link to a chart from an older run
            continue
        try:
            written.append(charts.draw(chart, directory).name)
        except (ValueError, TypeError, OSError, RuntimeError) as exc:
            stale.unlink(missing_ok=True)
            section.notes.append(f"chart {chart.filename} not drawn: {type(exc).__name__}: {exc}")
    return written


def shown(path: Path) -> str:
    """``path`` relative to the checkout when it is inside it (bench/results), else as is."""
    try:
        return str(path.resolve().relative_to(BENCH_DIR.parent))
    except ValueError:
        return str(path)


def report(results: Path, output: Path, *, draw: bool = True) -> list[Section]:
    """Build the report from ``results``/*.json into ``output``; returns the sections."""
    can_draw = draw and charts.available()
    lines = [
        "# triolb benchmark report",
        "",
        f"Generated by `bench/report.py` from `{shown(results)}/*.json` "
        f"({datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}). "
        "Each benchmark runs triolb and its peers side by side on the same machine, in the "
        "same run; see bench/README.md for the methods.",
        "",
    ]
    if draw and not can_draw:
        lines += ["Charts skipped: matplotlib is not installed (`pip install matplotlib`).", ""]
    sections = []
    output.parent.mkdir(parents=True, exist_ok=True)
    for bench in BENCHMARKS:
        loaded = load(results / f"{bench.name}.json")
        section = build_section(bench, loaded)
        names = draw_charts(section, output.parent, can_draw)
        raw_name = os.path.relpath(loaded.path, output.parent)
        lines += section_lines(section, raw_name=raw_name, raw_text=loaded.text, charts=names)
        sections.append(section)
    output.write_text("\n".join(lines).rstrip() + "\n")
    return sections


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """--results, --output, --no-charts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument("--output", type=Path, help="default RESULTS/report.md")
    parser.add_argument("--no-charts", action="store_true", help="write no PNG files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the report; 0 even when benchmarks are missing or failed (the report says so)."""
    args = parse_args(argv)
    output = args.output or args.results / "report.md"
    sections = report(args.results, output, draw=not args.no_charts)
    summary = ", ".join(f"{s.name}: {s.status}" for s in sections)
    print(f"wrote {output} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
