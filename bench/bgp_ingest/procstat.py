"""Memory of a receiver: its process tree read from ``/proc``.

``rss_mb`` in the results is the sum of ``VmHWM`` (each process's peak resident set) over the
receiver's processes, read just before they are stopped; the sampler also keeps the peak of the
summed ``VmRSS`` seen at each poll (``rss_peak_sampled_mb``), which can only be lower or equal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


def read_status_kb(pid: int, field: str) -> int | None:
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/<pid>/status``; None if gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def _parent_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                raw = stat.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(roots: Iterable[int]) -> list[int]:
    """``roots`` and all their live descendants."""
    parents = _parent_map()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = [pid for pid in roots if pid in parents]
    seen: set[int] = set()
    while stack and len(found) < 10_000:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process, in clock ticks (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            raw = stat.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


CLK_TCK = os.sysconf("SC_CLK_TCK")


class RssSampler:
    """Peak of the summed VmRSS over a process tree, the last VmHWM seen per process, and the
    CPU time each process used between its first and last sample."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self.hwm_kb: dict[int, tuple[str, int]] = {}
        self.ticks: dict[int, tuple[int, int]] = {}  # pid -> (first, last) cpu ticks

    def sample(self, roots: Iterable[int]) -> None:
        total = 0
        for pid in process_tree(roots):
            rss = read_status_kb(pid, "VmRSS") or 0
            total += rss
            hwm = read_status_kb(pid, "VmHWM")
            if hwm is not None:
                self.hwm_kb[pid] = (process_name(pid), hwm)
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self.ticks[pid] = (self.ticks.get(pid, (ticks, ticks))[0], ticks)
        self.peak_kb = max(self.peak_kb, total)

    def cpu_s(self) -> float:
        return round(sum(last - first for first, last in self.ticks.values()) / CLK_TCK, 2)

    def hwm_sum_mb(self) -> float | None:
        if not self.hwm_kb:
            return None
        return round(sum(kb for _name, kb in self.hwm_kb.values()) / 1024, 1)

    def peak_mb(self) -> float:
        return round(self.peak_kb / 1024, 1)

    def by_process_mb(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (name, kb) in sorted(self.hwm_kb.items()):
            out[f"{name}[{pid}]"] = round(kb / 1024, 1)
        return out
