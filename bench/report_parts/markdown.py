"""A :class:`~report_parts.model.Section` as Markdown: the method line, the table (triolb, then
each peer's figure and triolb ÷ peer), the targets, notes, machine, charts and raw JSON."""

from __future__ import annotations

from .model import PARITY, TRIOLB, Section, Table, Target, fmt, fmt_ratio, ratio

MET = {True: "**met**", False: "**not met**", None: "not evaluated"}


def escape(text: str) -> str:
    """Safe inside a table cell (a ``|`` would start a new column)."""
    return text.replace("|", "\\|").replace("\n", " ")


def table_lines(table: Table) -> list[str]:
    """The table: metric, triolb, then per peer its figure and triolb ÷ peer, then which way
    is better."""
    header = ["metric", table.name(TRIOLB)]
    for peer in table.peers:
        header += [table.name(peer), f"triolb ÷ {table.name(peer)}"]
    header.append("better")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in table.metrics:
        ours = metric.values.get(TRIOLB)
        row = [metric.label, fmt(ours, metric.unit)]
        for peer in table.peers:
            theirs = metric.values.get(peer)
            row += [
                fmt(theirs, metric.unit),
                fmt_ratio(ratio(ours, theirs), metric.better, table.name(peer)),
            ]
        row.append(metric.better)
        lines.append("| " + " | ".join(escape(cell) for cell in row) + " |")
    return lines


def target_line(check: Target) -> str:
    """'- label: measured — met / not met / not evaluated'."""
    measured = "no figure" if check.measured == "—" else check.measured
    return f"- {check.label}: {measured} — {MET[check.met]}"


def section_lines(
    section: Section, *, raw_name: str, raw_text: str | None, charts: list[str]
) -> list[str]:
    """The Markdown of one benchmark; ``charts`` are the PNG files actually written."""
    lines = [f"## {section.title}", ""]
    if section.status != "ok":
        lines += [f"**{section.status}**: {section.problem}", ""]
    for line in section.method:
        lines.append(f"*How:* {line}" if line is section.method[0] else f"*Also:* {line}")
    if section.method:
        lines.append("")
    if section.table is not None and section.table.metrics:
        lines += table_lines(section.table)
        lines += [
            "",
            "Ratios are triolb ÷ peer; the last column says which way is better "
            f"(within ±{PARITY:.0%} counts as parity).",
            "",
        ]
    if section.targets:
        lines += ["Targets:", *(target_line(check) for check in section.targets), ""]
    lines += [f"- {note}" for note in section.notes]
    if section.notes:
        lines.append("")
    if section.machine:
        lines += [f"Machine: {section.machine}.", ""]
    for name in charts:
        lines += [f"![{section.title}]({name})", ""]
    if raw_text is not None:
        lines += [
            f"Raw JSON: [{raw_name}]({raw_name})",
            "",
            "<details><summary>raw JSON</summary>",
            "",
            "```json",
            raw_text.rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return lines
