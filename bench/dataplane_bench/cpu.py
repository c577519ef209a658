"""Where the CPU went during one measurement, to tell a load-balancer limit from a tool limit.

- the machine: ``/proc/stat``'s aggregate line before and after (user, system, softirq, idle as
  a share of all CPUs). Forwarding, NAT and conntrack (and triolb's eBPF) run in softirq.
- the load generator: ``getrusage(RUSAGE_CHILDREN)`` around the command that runs it in the
  foreground (``ip netns exec`` execs it, so the reaped child is the tool itself);
- the servers: utime + stime of every process inside their namespaces, before and after.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable

import attrs

from appliance.lab.procs import pids_in_namespace

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: /proc/stat cpu line: user nice system idle iowait irq softirq steal guest guest_nice
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@attrs.frozen
class MachineSample:
    ticks: tuple[int, ...]

    @classmethod
    def now(cls) -> MachineSample:
        with open("/proc/stat") as stat:
            first = stat.readline().split()
        return cls(tuple(int(v) for v in first[1 : 1 + len(STAT_FIELDS)]))


def machine_share(before: MachineSample, after: MachineSample) -> dict[str, float]:
    """Percent of all CPUs' time between the samples: busy, and user/system/softirq/idle."""
    delta = [b - a for a, b in zip(before.ticks, after.ticks, strict=True)]
    total = sum(delta) or 1
    parts = dict(zip(STAT_FIELDS, delta, strict=True))
    share = {
        name: round(100.0 * parts[name] / total, 1)
        for name in ("user", "system", "softirq", "idle")
    }
    share["busy"] = round(100.0 - 100.0 * (parts["idle"] + parts["iowait"]) / total, 1)
    return share


def children_cpu_s() -> float:
    """CPU seconds of all children this process has reaped so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def namespace_cpu_ticks(namespaces: Iterable[str]) -> dict[int, int]:
    """pid -> utime + stime (clock ticks) of every process in the given lab namespaces."""
    ticks: dict[int, int] = {}
    for ns in namespaces:
        for pid in pids_in_namespace(ns):
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    raw = stat.read()
            except OSError:
                continue
            fields = raw[raw.rindex(")") + 2 :].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def ticks_spent(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU seconds the processes alive at the end spent since ``before``."""
    spent = sum(value - before.get(pid, 0) for pid, value in after.items())
    return spent / CLOCK_TICKS
