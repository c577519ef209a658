"""``bgp_ingest.json``: full-table ingest, triolb vs ExaBGP vs GoBGP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import (
    TRIOLB,
    Chart,
    Metric,
    Panel,
    Section,
    Series,
    Table,
    cell,
    failure_notes,
    fmt,
    number,
)

NAME = "bgp_ingest"
TITLE = "BGP full-table ingest — triolb vs ExaBGP vs GoBGP"
NAMES = {TRIOLB: "triolb", "exabgp": "ExaBGP", "gobgp": "GoBGP"}
CHART = "bgp_ingest.png"
#: (label, key, unit, better) of the table's rows
ROWS: tuple[tuple[str, str, str, Any], ...] = (
    ("ingest time (Established → all prefixes)", "seconds", "s", "lower"),
    ("prefixes per second", "prefixes_per_s", "/s", "higher"),
    ("peak RSS (process tree)", "rss_mb", "MB", "lower"),
    ("CPU time during ingest", "cpu_s", "s", "lower"),
)


def receivers(data: Mapping[str, Any]) -> list[str]:
    """The receivers present, triolb first, then the peers in the JSON's order."""
    found = [key for key, value in data.items() if key in NAMES and isinstance(value, Mapping)]
    return sorted(found, key=lambda key: key != TRIOLB)


def method(data: Mapping[str, Any]) -> list[str]:
    """What was measured and how, from the result's own fields (it has no ``method``)."""
    bird = data.get("bird") or {}
    repeat = data.get("repeat") or 1
    runs = f"median of {repeat} interleaved runs" if repeat > 1 else "one run each"
    return [
        f"BIRD {bird.get('version', '2')} originates {fmt(data.get('prefixes'))} IPv4 prefixes "
        "over eBGP to each receiver in turn, on a fresh session from the same loaded table; "
        "time from Established to the last prefix in the receiver's Adj-RIB-In (CLOCK_MONOTONIC), "
        f"peak RSS = sum of VmHWM over the receiver's processes; {runs}.",
    ]


def runs_note(data: Mapping[str, Any], names: list[str]) -> str:
    """'runs (s): triolb 6.54, 9.66 · ExaBGP …' when the bench repeated its runs."""
    parts = []
    for key in names:
        runs = data[key].get("runs_seconds")
        if isinstance(runs, list) and len(runs) > 1:
            parts.append(
                f"{NAMES[key]} "
                + ", ".join(fmt(r if number(r) is not None else "failed") for r in runs)
            )
    return "every run's ingest time (s): " + " · ".join(parts) if parts else ""


def section(data: Mapping[str, Any]) -> Section:
    """The table (one row per figure, a column pair per peer), notes and charts."""
    names = receivers(data)
    peers = [key for key in names if key != TRIOLB]
    metrics = [
        Metric(label, unit, better, {key: cell(data[key], field) for key in names})
        for label, field, unit, better in ROWS
    ]
    metrics.append(  # reported by triolb's receiver only
        Metric(
            "event-loop lag p99 during ingest (triolb only)",
            "ms",
            "lower",
            {TRIOLB: cell(data.get(TRIOLB), "loop_lag_p99_ms")},
        )
    )
    notes = failure_notes({key: data[key] for key in names}, NAMES)
    notes += [
        f"{NAMES[key]} timed out after {fmt(data.get('timeout_per_receiver_s'))} s with "
        f"{fmt(data[key].get('received'))} of {fmt(data.get('prefixes'))} prefixes"
        for key in names
        if data[key].get("timeout") is True
    ]
    if note := runs_note(data, names):
        notes.append(note)
    return Section(
        name=NAME,
        title=TITLE,
        method=method(data),
        table=Table(peers, metrics, NAMES),
        notes=notes,
        charts=charts(data),
    )


def charts(data: Mapping[str, Any]) -> list[Chart]:
    """Ingest time and peak RSS per receiver, every run as a dot on its bar."""
    names = receivers(data)
    if not names:
        return []
    labels = [NAMES[key] for key in names]

    def panel(title: str, field: str, runs_field: str, unit: str) -> Panel:
        values = [number(data[key].get(field)) for key in names]
        points = [
            [v for r in data[key].get(runs_field) or [] if (v := number(r)) is not None]
            for key in names
        ]
        return Panel("bars", title, unit, labels, [Series(title, values, points)])

    panels = [
        panel("ingest time", "seconds", "runs_seconds", "seconds (lower is better)"),
        panel("peak RSS", "rss_mb", "runs_rss_mb", "MB (lower is better)"),
    ]
    title = f"BGP ingest of {fmt(data.get('prefixes'))} prefixes"
    return [Chart(CHART, title, panels)]
