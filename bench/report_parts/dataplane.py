"""``dataplane.json``: throughput and connections/s, triolb vs nftables DNAT vs direct."""

from __future__ import annotations

import statistics
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
    number,
    target,
)

NAME = "dataplane"
TITLE = "Dataplane — triolb vs nftables DNAT vs no load balancer"
NAMES = {TRIOLB: "triolb", "nftables": "nftables", "direct": "direct"}
PEERS = ["nftables", "direct"]
CHART = "dataplane.png"
#: targets_met key -> (ratios key, label)
TARGETS = {
    "throughput_vs_direct_ge_0.9": ("throughput_vs_direct", "throughput ≥ 0.9 x direct"),
    "throughput_vs_nftables_ge_1.0": ("throughput_vs_nftables", "throughput ≥ nftables"),
    "cps_vs_nftables_ge_1.0": ("cps_vs_nftables", "connections/s ≥ nftables"),
}


def figure(data: Mapping[str, Any], group: str, key: str) -> Cell:
    """A headline median; "failed" for a variant whose set-up failed."""
    errors = data.get("errors") or {}
    if key in errors:
        return "failed"
    if group == "cps" and key == "direct":
        return number(data.get("cps_direct"))
    return number((data.get(group) or {}).get(key))


def run_values(data: Mapping[str, Any], key: str, kind: str, field: str) -> list[float]:
    """``field`` of each successful ``kind`` run ("throughput" / "cps") of variant ``key``."""
    runs = ((data.get("runs") or {}).get(key) or {}).get(kind) or []
    return [
        v for run in runs if isinstance(run, Mapping) and (v := number(run.get(field))) is not None
    ]


def latency_p99_ms(data: Mapping[str, Any], key: str) -> Cell:
    """Median over the connection runs of wrk's latency p99, in ms."""
    runs = ((data.get("runs") or {}).get(key) or {}).get("cps") or []
    values = [
        float(p99) / 1000
        for run in runs
        if isinstance(run, Mapping) and (p99 := number((run.get("latency_us") or {}).get("p99")))
    ]
    if (data.get("errors") or {}).get(key):
        return "failed"
    return statistics.median(values) if values else None


def section(data: Mapping[str, Any]) -> Section:
    """The table (one row per figure, a column pair per peer), notes and charts."""
    names = [TRIOLB, *PEERS]
    metrics = [
        Metric(
            "throughput (iperf3, 1 stream)",
            "Gbit/s",
            "higher",
            {key: figure(data, "throughput_gbps", key) for key in names},
        ),
        Metric(
            "new connections per second (wrk)",
            "/s",
            "higher",
            {key: figure(data, "cps", key) for key in names},
        ),
        Metric(
            "request latency p99 during the cps runs",
            "ms",
            "lower",
            {key: latency_p99_ms(data, key) for key in names},
        ),
    ]
    notes = [f"{NAMES.get(k, k)} failed: {v}" for k, v in (data.get("errors") or {}).items()]
    notes.append(
        "direct's connections/s is ep1's nginx alone (one nginx instead of three): a reference "
        "for what wrk and nginx manage on this machine, not a load balancer."
    )
    return Section(
        name=NAME,
        title=TITLE,
        method=method(data),
        table=Table(PEERS, metrics, NAMES),
        notes=notes,
        targets=targets(data),
        charts=charts(data),
    )


def method(data: Mapping[str, Any]) -> list[str]:
    """The bench's ``method`` texts for the two measurements, the peers, the repeat count."""
    described = data.get("method") or {}
    lines = [f"{what}: {described[what]}." for what in ("throughput", "cps") if what in described]
    lines.append(
        "peers: nftables = a DNAT table in node1 with kernel conntrack; direct = client → "
        "router → ep1 with no load balancer (the ceiling)."
    )
    if data.get("repeat"):
        lines.append(f"{data['repeat']} runs of each measurement per variant; medians shown.")
    return lines


def targets(data: Mapping[str, Any]) -> list[Target]:
    """The bench's ratio targets with the measured ratio beside each."""
    met = data.get("targets_met") or {}
    ratios = data.get("ratios") or {}
    out = []
    for key, (ratio_key, label) in TARGETS.items():
        value = number(ratios.get(ratio_key))
        out.append(target(label, None if value is None else f"{value:.3f}x", "", met.get(key)))
    return out


def charts(data: Mapping[str, Any]) -> list[Chart]:
    """Median per variant with every run as a dot: throughput, and connections/s."""
    names = [key for key in (TRIOLB, *PEERS) if run_values(data, key, "throughput", "gbps")]
    if not names:
        return []
    labels = [NAMES[key] for key in names]
    panels = [
        Panel(
            "bars",
            "throughput",
            "Gbit/s (higher is better)",
            labels,
            [
                Series(
                    "throughput",
                    [number(figure(data, "throughput_gbps", key)) for key in names],
                    [run_values(data, key, "throughput", "gbps") for key in names],
                )
            ],
        ),
        Panel(
            "bars",
            "new connections per second",
            "connections/s (higher is better)",
            labels,
            [
                Series(
                    "connections/s",
                    [number(figure(data, "cps", key)) for key in names],
                    [run_values(data, key, "cps", "cps") for key in names],
                )
            ],
        ),
    ]
    return [Chart(CHART, "Dataplane: medians, every run as a dot", panels)]
