"""``ctsync.json``: conntrack sync — replication lag (triolb vs conntrackd), bulk resync and
transfer rate (triolb; conntrackd's bulk is not measured)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import (
    TRIOLB,
    Cell,
    Chart,
    Metric,
    Panel,
    Section,
    Series,
    Table,
    Target,
    failure_notes,
    fmt,
    number,
    target,
)

NAME = "ctsync"
TITLE = "Conntrack sync — triolb vs conntrackd"
PEER = "conntrackd"
NAMES = {TRIOLB: "triolb", PEER: "conntrackd"}
CHART = "ctsync_lag.png"
PERCENTILES = ("p50", "p90", "p99", "max")


def triolb_part(data: Mapping[str, Any], part: str) -> Mapping[str, Any]:
    """``triolb.<part>`` ({} when absent)."""
    found = (data.get(TRIOLB) or {}).get(part)
    return found if isinstance(found, Mapping) else {}


def lag_cell(entry: Any, key: str) -> Cell:
    """A lag percentile of a run (``{"lag_ms": {...}}``), "failed" for an entry with an error."""
    if not isinstance(entry, Mapping) or not entry:
        return None
    if entry.get("error"):
        return "failed"
    return number((entry.get("lag_ms") or {}).get(key))


def lag_runs(data: Mapping[str, Any]) -> dict[str, Any]:
    """The lag runs by label: triolb empty, triolb with the bulk in both tables, conntrackd."""
    triolb = data.get(TRIOLB)
    failed = (
        {"error": triolb["error"]} if isinstance(triolb, Mapping) and triolb.get("error") else None
    )
    return {
        "triolb": failed or triolb_part(data, "lag"),
        "triolb_loaded": failed or triolb_part(data, "lag_loaded"),
        PEER: data.get(PEER),
    }


def section(data: Mapping[str, Any]) -> Section:
    """Lag percentiles beside conntrackd's, the loaded lag and bulk figures (triolb only)."""
    runs = lag_runs(data)
    entries = fmt(data.get("entries"))
    metrics = [
        Metric(
            f"lag {p}",
            "ms",
            "lower",
            {TRIOLB: lag_cell(runs["triolb"], p), PEER: lag_cell(runs[PEER], p)},
        )
        for p in PERCENTILES
    ]
    metrics += [
        Metric(
            f"lag {p} with {entries} entries in both tables",
            "ms",
            "lower",
            {TRIOLB: lag_cell(runs["triolb_loaded"], p), PEER: None},
        )
        for p in ("p50", "p99")
    ]
    metrics += [
        Metric(
            f"bulk resync of {entries} entries",
            "s",
            "lower",
            {TRIOLB: number(data.get("bulk_resync_s"))},
        ),
        Metric(
            "bulk transfer rate", "entries/s", "higher", {TRIOLB: number(data.get("entries_per_s"))}
        ),
        Metric(
            "connections never seen on the peer",
            "",
            "lower",
            {
                key: (runs[key] or {}).get("missing_on_peer")
                for key in ("triolb", PEER)
                if isinstance(runs[key], Mapping)
            },
        ),
    ]
    notes = failure_notes({TRIOLB: data.get(TRIOLB), PEER: data.get(PEER)}, NAMES)
    notes.append("conntrackd's bulk resync is not measured; its rows say —.")
    return Section(
        name=NAME,
        title=TITLE,
        method=method(data),
        table=Table([PEER], metrics, NAMES),
        notes=notes,
        targets=targets(data),
        charts=charts(data),
    )


def method(data: Mapping[str, Any]) -> list[str]:
    """The lag runs' parameters, then the bench's own ``notes``."""
    how = data.get("method") or {}
    lines = []
    if how:
        lines.append(
            f"{fmt(how.get('connections'))} real TCP connections per lag run at "
            f"{fmt(how.get('rate_per_s'))}/s, each held {fmt(how.get('hold_s'))} s."
        )
    notes = data.get("notes")
    if isinstance(notes, list):
        lines += [str(note).rstrip(".") + "." for note in notes]
    return lines


def targets(data: Mapping[str, Any]) -> list[Target]:
    """The issue's three targets with the bench's thresholds and verdicts."""
    met = data.get("targets_met") or {}
    wanted = data.get("targets") or {}
    lag = data.get("lag_ms") or {}
    return [
        target(
            f"lag p99 ≤ {fmt(wanted.get('lag_p99_ms_le', 50))} ms",
            number(lag.get("p99")),
            "ms",
            met.get("lag_p99_le_50ms"),
        ),
        target(
            f"transfer ≥ {fmt(wanted.get('entries_per_s_ge', 50000))} entries/s",
            number(data.get("entries_per_s")),
            "entries/s",
            met.get("entries_per_s_ge_50000"),
        ),
        target(
            f"bulk resync of {fmt(wanted.get('bulk_entries', 100000))} "
            f"≤ {fmt(wanted.get('bulk_resync_s_le', 3))} s",
            number(data.get("bulk_resync_s")),
            "s",
            met.get("bulk_resync_100k_le_3s"),
        ),
    ]


def raw_lags(entry: Any) -> list[float]:
    """Every connection's lag, when the bench kept them (``lags_ms``; see the report)."""
    values = entry.get("lags_ms") if isinstance(entry, Mapping) else None
    return [v for x in values if (v := number(x)) is not None] if isinstance(values, list) else []


def charts(data: Mapping[str, Any]) -> list[Chart]:
    """The lag distribution: an empirical CDF when the raw lags are there, else the
    percentiles side by side (log scale: conntrackd's p50 is ~20 times smaller)."""
    runs = lag_runs(data)
    labels = {
        "triolb": "triolb",
        "triolb_loaded": f"triolb, {fmt(data.get('entries'))} in tables",
        PEER: "conntrackd",
    }
    raw = {key: raw_lags(entry) for key, entry in runs.items()}
    if any(raw.values()):
        series = [Series(labels[key], list(values)) for key, values in raw.items() if values]
        panel = Panel(
            "cdf",
            "replication lag, every connection",
            "share of connections",
            [],
            series,
            xlabel="lag (ms)",
            log=True,
        )
        return [Chart(CHART, "Conntrack sync lag distribution", [panel])]
    series = []
    for key, entry in runs.items():
        values = [number(lag_cell(entry, p)) for p in PERCENTILES]
        if any(v is not None for v in values):
            series.append(Series(labels[key], values))
    if not series:
        return []
    panel = Panel(
        "bars",
        "replication lag percentiles",
        "lag (ms, log scale, lower is better)",
        list(PERCENTILES),
        series,
        log=True,
    )
    return [Chart(CHART, "Conntrack sync lag distribution", [panel])]
