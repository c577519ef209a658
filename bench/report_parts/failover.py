"""``failover_l2.json``: the VIP's silence when the active node's link is cut, triolb vs
keepalived (VRRPv3) at the same advert interval."""

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
    fmt,
    number,
    target,
)

NAME = "failover_l2"
TITLE = "L2 failover — triolb vs keepalived"
PEER = "keepalived"
NAMES = {TRIOLB: "triolb", PEER: "keepalived"}
CHART = "failover_l2_gaps.png"
#: (label, key) from ``<impl>_gap_ms`` (the summary of the trials' gaps)
GAP_ROWS = (
    ("gap median", "median"),
    ("gap max", "max"),
    ("gap min", "min"),
    ("gap mean", "mean"),
)
#: (label, key) from ``<impl>`` (node2's capture of each takeover)
DETAIL_ROWS = (
    ("election (node1's last advert → node2's first), median", "election_median_ms"),
    ("announcement (node2's first advert → its GARP), median", "announce_median_ms"),
)


def gaps(data: Mapping[str, Any], impl: str) -> Mapping[str, Any]:
    """``<impl>_gap_ms``: the gap summary, or ``{"median": None, "error": …}`` for an
    implementation that could not run ({} when absent)."""
    found = data.get(f"{impl}_gap_ms")
    return found if isinstance(found, Mapping) else {}


def gap_cell(data: Mapping[str, Any], impl: str, key: str) -> Cell:
    """A gap figure of ``impl``: "failed" when it could not run, None when not run."""
    summary = gaps(data, impl)
    if summary.get("error"):
        return "failed"
    if f"{impl}_gap_ms" not in data:
        return None
    return number(summary.get(key))


def section(data: Mapping[str, Any]) -> Section:
    """Gap figures, node2's view of the takeover, failed trials; targets; the chart."""
    impls = (TRIOLB, PEER)
    metrics = [
        Metric(label, "ms", "lower", {impl: gap_cell(data, impl, key) for impl in impls})
        for label, key in GAP_ROWS
    ]
    metrics += [
        Metric(
            label, "ms", "lower", {impl: number((data.get(impl) or {}).get(key)) for impl in impls}
        )
        for label, key in DETAIL_ROWS
    ]
    metrics.append(
        Metric(
            "failed trials",
            "",
            "lower",
            {impl: gaps(data, impl).get("failed") for impl in impls if gaps(data, impl)},
        )
    )
    notes = [
        f"{NAMES[impl]} could not run: {gaps(data, impl)['error']}"
        for impl in impls
        if gaps(data, impl).get("error")
    ]
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
    """One line from ``advert_ms``, ``trials`` and ``method`` (probe interval, cut phase)."""
    how = data.get("method") or {}
    advert = data.get("advert_ms")
    phase = how.get("cut_phase_ms")
    cut = f"{fmt(phase)} ms after one of its adverts" if phase is not None else "at a random phase"
    return [
        f"Scenario 1 (flat L2): the client probes the VIP over UDP every "
        f"{fmt(how.get('probe_interval_ms'))} ms; node1's link is cut {cut} ({fmt(advert)} ms "
        "adverts, the same priorities for both); gap = the longest interval between two "
        f"replies; {fmt(data.get('trials'))} trials per implementation.",
    ]


def targets(data: Mapping[str, Any]) -> list[Target]:
    """The issue's targets as the bench's ``targets_met`` judged them (thresholds are the
    bench's TARGET_MEDIAN_MS / TARGET_MAX_MS; the JSON does not carry them)."""
    met = data.get("targets_met") or {}
    ours, theirs = gaps(data, TRIOLB), gaps(data, PEER)
    out = [
        target("gap median ≤ 150 ms", number(ours.get("median")), "ms", met.get("median_le_150ms")),
        target("gap max ≤ 250 ms", number(ours.get("max")), "ms", met.get("max_le_250ms")),
    ]
    if "median_le_keepalived" in met or number(theirs.get("median")) is not None:
        measured = (
            f"{fmt(number(ours.get('median')), 'ms')} vs {fmt(number(theirs.get('median')), 'ms')}"
        )
        out.append(
            target("gap median ≤ keepalived's", measured, "", met.get("median_le_keepalived"))
        )
    return out


def per_trial(data: Mapping[str, Any], impl: str) -> list[float | None]:
    """Each trial's gap in order, None for a failed trial; from the trials when present (they
    keep the failed ones' places), else from the summary's ``gaps``."""
    trials = (data.get(impl) or {}).get("trials")
    if isinstance(trials, list) and trials:
        return [number(t.get("gap_ms")) if isinstance(t, Mapping) else None for t in trials]
    return [number(g) for g in gaps(data, impl).get("gaps") or []]


def charts(data: Mapping[str, Any]) -> list[Chart]:
    """The gap of every trial, both implementations, medians dashed."""
    per_impl = {impl: per_trial(data, impl) for impl in (TRIOLB, PEER)}
    series = [
        Series(NAMES[impl], values)
        for impl, values in per_impl.items()
        if any(v is not None for v in values)
    ]
    if not series:
        return []
    count = max(len(s.values) for s in series)
    panel = Panel(
        "lines",
        f"VIP silence per trial ({fmt(data.get('advert_ms'))} ms adverts)",
        "gap (ms, lower is better)",
        [str(i + 1) for i in range(count)],
        series,
        xlabel="trial",
    )
    return [Chart(CHART, "L2 failover gap per trial", [panel])]
