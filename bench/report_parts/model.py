"""What a report section is made of: tables of metrics (triolb beside its peers), target
checks and chart descriptions. Plain data, so the benchmark modules stay pure and testable.

Ratios are always triolb ÷ peer; each metric says whether lower or higher is better, and the
verdict allows a tolerance (:data:`PARITY`) within which the two count as at parity, since
run-to-run spread on the lab machine is several percent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

TRIOLB = "triolb"
#: ratios within 1 ± PARITY count as parity (the benchmarks' run-to-run spread is larger)
PARITY = 0.02
Better = Literal["lower", "higher"]
Status = Literal["ok", "missing", "failed", "unreadable"]
#: a cell: a figure, None (not measured) or a text such as "failed" / "timeout"
Cell = float | int | str | None


@dataclass(frozen=True)
class Metric:
    """One table row: ``values`` maps an implementation name to its figure."""

    label: str
    unit: str
    better: Better
    values: Mapping[str, Cell]


@dataclass(frozen=True)
class Table:
    """triolb beside each of ``peers`` (display names in ``names``)."""

    peers: list[str]
    metrics: list[Metric]
    names: Mapping[str, str] = field(default_factory=dict)

    def name(self, key: str) -> str:
        return self.names.get(key, key)


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: what, the measured figure (text), met or not (None: not
    evaluated, e.g. triolb had no figure)."""

    label: str
    measured: str
    met: bool | None


@dataclass(frozen=True)
class Series:
    """A named list of values; ``points`` optionally holds every run behind each value."""

    label: str
    values: list[float | None]
    points: list[list[float]] | None = None


@dataclass(frozen=True)
class Panel:
    """One plot. ``bars``: a group per category, a bar per series (run dots on top);
    ``lines``: values against the categories (trials), with each series' median dashed;
    ``cdf``: each series' values as an empirical distribution."""

    kind: Literal["bars", "lines", "cdf"]
    title: str
    ylabel: str
    categories: list[str]
    series: list[Series]
    xlabel: str = ""
    log: bool = False


@dataclass(frozen=True)
class Chart:
    """A PNG written next to the report as ``filename``."""

    filename: str
    title: str
    panels: list[Panel]


@dataclass
class Section:
    """Everything the report says about one benchmark."""

    name: str
    title: str
    status: Status = "ok"
    problem: str = ""
    method: list[str] = field(default_factory=list)
    table: Table | None = None
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    machine: str = ""
    charts: list[Chart] = field(default_factory=list)


def number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def ratio(ours: Cell, theirs: Cell) -> float | None:
    """triolb ÷ peer, or None when either is missing, failed, or not positive (a ratio of a
    negative or zero figure, e.g. an announcement before the advert, means nothing)."""
    a, b = number(ours), number(theirs)
    if a is None or b is None or a <= 0 or b <= 0:
        return None
    return a / b


def verdict(value: float, better: Better, peer: str) -> str:
    """Who is ahead at ratio ``value`` (triolb ÷ ``peer``)."""
    if abs(value - 1) <= PARITY:
        return "parity"
    ahead = (value < 1) == (better == "lower")
    return "triolb better" if ahead else f"{peer} better"


def fmt(value: Cell, unit: str = "") -> str:
    """A figure for a table cell: thousands separators, about three significant digits."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    magnitude = abs(value)
    if isinstance(value, int) or magnitude >= 1000:
        text = f"{value:,.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def fmt_ratio(value: float | None, better: Better, peer: str) -> str:
    """'0.33x (triolb better)', or — when there is no ratio."""
    if value is None:
        return "—"
    figure = f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    return f"{figure}x ({verdict(value, better, peer)})"


def machine_line(data: Mapping[str, Any]) -> str:
    """'2 CPUs, kernel …, Python …' from a result's ``machine`` (empty if absent)."""
    machine = data.get("machine")
    if not isinstance(machine, Mapping):
        return ""
    parts = []
    if machine.get("cpus") is not None:
        parts.append(f"{machine['cpus']} CPUs")
    if machine.get("kernel"):
        parts.append(f"kernel {machine['kernel']}")
    if machine.get("python"):
        parts.append(f"Python {machine['python']}")
    return ", ".join(parts)


def cell(entry: Any, key: str) -> Cell:
    """``entry[key]`` for a table, or why there is none: an implementation that failed says
    "failed", one that timed out "timeout"."""
    if not isinstance(entry, Mapping):
        return None
    if entry.get("error"):
        return "failed"
    if entry.get("timeout") is True:
        return "timeout"
    value = entry.get(key)
    return value if number(value) is not None else None


def target(label: str, measured: Cell, unit: str, met: Any) -> Target:
    """A :class:`Target` from a result's ``targets_met`` value (anything not a bool: None)."""
    return Target(label, fmt(measured, unit), met if isinstance(met, bool) else None)


def failure_notes(entries: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    """One note per implementation whose entry carries an ``error``."""
    notes = []
    for key, entry in entries.items():
        if isinstance(entry, Mapping) and entry.get("error"):
            notes.append(f"{names.get(key, key)} failed: {entry['error']}")
    return notes
