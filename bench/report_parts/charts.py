"""Draw :class:`~report_parts.model.Chart` descriptions as PNG files with matplotlib (Agg
backend: no display, no network). matplotlib is imported only here, and only when a chart is
drawn, so the report still comes out (without charts) where it is not installed."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from .model import Chart, Panel, fmt

if TYPE_CHECKING:
    from matplotlib.axes import Axes

DPI = 110
PANEL_SIZE = (5.2, 3.8)


def available() -> bool:
    """True when matplotlib can be imported (it is a test extra, not a dependency)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    return True


def draw(chart: Chart, directory: Path) -> Path:
    """Write ``chart`` to ``directory / chart.filename`` and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    width, height = PANEL_SIZE
    figure, axes = pyplot.subplots(
        1, len(chart.panels), figsize=(width * len(chart.panels), height), squeeze=False
    )
    try:
        for axis, panel in zip(axes[0], chart.panels, strict=True):
            DRAWERS[panel.kind](axis, panel)
            axis.set_title(panel.title)
            axis.set_ylabel(panel.ylabel)
            if panel.xlabel:
                axis.set_xlabel(panel.xlabel)
            axis.grid(True, axis="y", alpha=0.3)
        figure.suptitle(chart.title)
        figure.tight_layout()
        path = directory / chart.filename
        figure.savefig(path, dpi=DPI, format="png")
    finally:
        pyplot.close(figure)
    return path


def bars(axis: Axes, panel: Panel) -> None:
    """A group per category, a bar per series (one series: a colour per category); each
    bar's runs as black dots. A figure that cannot be drawn (None, or not positive on a log
    scale) leaves its bar out."""
    count = len(panel.series)
    width = 0.8 / count
    for index, series in enumerate(panel.series):
        offset = (index - (count - 1) / 2) * width
        for position, value in enumerate(series.values):
            x = position + offset
            points = series.points[position] if series.points else []
            if len(points) > 1:
                axis.scatter([x] * len(points), points, color="black", s=10, zorder=3)
            if value is None or (panel.log and value <= 0):
                continue
            colour = f"C{index}" if count > 1 else f"C{position}"
            axis.bar(x, value, width, color=colour, label=series.label if position == 0 else None)
            axis.annotate(  # above the run dots, so they stay readable
                fmt(value),
                (x, max([value, *points])),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    axis.set_xticks(range(len(panel.categories)), panel.categories)
    axis.margins(y=0.1)  # room for the labels above the tallest bar
    if panel.log:
        axis.set_yscale("log")
    if count > 1:
        axis.legend(fontsize=8)


def lines(axis: Axes, panel: Panel) -> None:
    """Each series against the categories (missing values left as holes), median dashed."""
    positions = list(range(1, len(panel.categories) + 1))
    for index, series in enumerate(panel.series):
        values = [float("nan") if v is None else v for v in series.values]
        values += [float("nan")] * (len(positions) - len(values))
        axis.plot(positions, values, marker="o", color=f"C{index}", label=series.label)
        present = [v for v in series.values if v is not None]
        if present:
            median = statistics.median(present)
            axis.axhline(
                median,
                color=f"C{index}",
                linestyle="--",
                linewidth=1,
                label=f"{series.label} median {median:.1f}",
            )
    axis.set_xticks(positions, panel.categories, fontsize=7)
    axis.legend(fontsize=8)


def cdf(axis: Axes, panel: Panel) -> None:
    """Each series' values as a step function from 0 to 1."""
    for index, series in enumerate(panel.series):
        values = sorted(v for v in series.values if v is not None and (v > 0 or not panel.log))
        if values:
            shares = [(i + 1) / len(values) for i in range(len(values))]
            axis.step(values, shares, where="post", color=f"C{index}", label=series.label)
    if panel.log:
        axis.set_xscale("log")
    axis.legend(fontsize=8)


DRAWERS = {"bars": bars, "lines": lines, "cdf": cdf}
