"""Replication lag: connection established on the client -> its entry in node2's conntrack map.

The opener (:mod:`ctsync_bench.opener`) runs in the client namespace and connects to
VIP:9000 (the ``echo`` service, full NAT through node1) at a steady rate, holding each
connection a while. It appends ``<client port> <monotonic ns> <wall ns>`` as soon as
``connect()`` returns. The bench process follows that file and, about every millisecond, looks
up each pending forward key (client, VIP, client port, 9000, TCP) in node2's pinned conntrack
map (read only): the lag of a connection is the first probe that finds it there flagged
``CT_REMOTE`` minus its connect time, both on CLOCK_MONOTONIC (shared by all namespaces).
The same probe notes when node1's own entry reaches ESTABLISHED (``node1_established_ms``):
the dataplane's part, before sync sees the event.
"""

from __future__ import annotations

import ipaddress
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle
from bpf.conntrack import CtTuple
from bpf.layout import CT_REMOTE, CtKey, CtState
from bpf.maps import Maps

from .nodes import CLIENT, ECHO_PORT, VIP, log

OPENER = Path(__file__).resolve().parent / "opener.py"
TCP = 6
#: a connection not seen on the peer within this long is reported missing
MISSING_AFTER_S = 10.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": round(statistics.median(values), 2),
        "p90": round(percentile(values, 90), 2),
        "p99": round(percentile(values, 99), 2),
        "max": round(max(values), 2),
        "min": round(min(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


class OpenerFile:
    """Follows the opener's output file (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = ""
        self.done: tuple[int, int] | None = None
        self.failures: list[str] = []

    def new_connections(self) -> list[tuple[int, int, int]]:
        """(client port, monotonic ns, wall ns) of the lines written since the last call."""
        try:
            with open(self.path, errors="replace") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
                self._offset = handle.tell()
        except FileNotFoundError:
            return []
        lines = (self._partial + chunk).split("\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "done":
                self.done = (int(parts[1]), int(parts[2]))
            elif parts[0] == "fail":
                self.failures.append(" ".join(parts[2:]))
            else:
                out.append((int(parts[0]), int(parts[1]), int(parts[2])))
        return out


def opener_argv(out: Path, count: int, rate: float, hold: float, max_s: float) -> list[str]:
    return [
        sys.executable,
        str(OPENER),
        f"--target={VIP}",
        f"--port={ECHO_PORT}",
        f"--count={count}",
        f"--rate={rate}",
        f"--hold={hold}",
        f"--out={out}",
        f"--max-seconds={max_s}",
    ]


def forward_key(sport: int) -> CtKey:
    """node1's forward key of the client's connection from ``sport`` to VIP:9000."""
    client, vip = ipaddress.IPv4Address(CLIENT), ipaddress.IPv4Address(VIP)
    return CtTuple(client, vip, sport, ECHO_PORT, TCP).to_key()


def measure(
    lab: LabHandle,
    node1: Maps,
    node2: Maps,
    workdir: Path,
    *,
    name: str,
    count: int,
    rate: float,
    hold: float,
    probe_interval_s: float = 0.001,
) -> dict[str, Any]:
    """One run of ``count`` connections; returns the lag summary and the details."""
    out = workdir / f"{name}.txt"
    max_s = count / rate + hold + 30
    lab.spawn("client", name, opener_argv(out, count, rate, hold, max_s))
    follow = OpenerFile(out)
    pending: dict[int, tuple[int, CtKey]] = {}
    local_pending: dict[int, tuple[int, CtKey]] = {}
    lags: list[float] = []
    local: list[float] = []
    missing: list[int] = []
    probes = 0
    started = time.monotonic()
    deadline = started + max_s + MISSING_AFTER_S + 5
    try:
        while time.monotonic() < deadline:
            for sport, mono_ns, _wall in follow.new_connections():
                key = forward_key(sport)
                pending[sport] = (mono_ns, key)
                local_pending[sport] = (mono_ns, key)
            now = time.monotonic_ns()
            for sport, (since, key) in list(pending.items()):
                entry = node2.conntrack.lookup(key)
                if entry is not None and entry.flags & CT_REMOTE:
                    lags.append((now - since) / 1e6)
                    del pending[sport]
                elif now - since > MISSING_AFTER_S * 1e9:
                    missing.append(sport)
                    del pending[sport]
            for sport, (since, key) in list(local_pending.items()):
                entry = node1.conntrack.lookup(key)
                if entry is not None and entry.state != CtState.SYN_SENT:
                    local.append((now - since) / 1e6)
                    del local_pending[sport]
                elif now - since > MISSING_AFTER_S * 1e9:
                    del local_pending[sport]
            probes += 1
            if follow.done is not None and not pending:
                break
            time.sleep(probe_interval_s)
    finally:
        if lab.alive(name):
            lab.stop(name, timeout=5.0)
        else:
            lab.stop(name, timeout=1.0)
    elapsed = time.monotonic() - started
    opened, failed = follow.done if follow.done is not None else (len(lags) + len(missing), -1)
    log(
        f"{name}: {len(lags)} seen on node2, {len(missing)} missing, opened {opened}, "
        f"failed {failed}, {probes} probe rounds in {elapsed:.1f} s"
    )
    return {
        "lag_ms": summary(lags),
        "lags_ms": [round(v, 3) for v in lags],  # every one, for the report's distribution
        "node1_established_ms": summary(local),
        "connections": count,
        "opened": opened,
        "connect_failures": failed,
        "failure_samples": follow.failures[:5],
        "seen_on_peer": len(lags),
        "missing_on_peer": len(missing),
        "rate_per_s": rate,
        "hold_s": hold,
        "probe_rounds": probes,
        "probe_mean_interval_ms": round(elapsed * 1000 / max(1, probes), 3),
        "wall_s": round(elapsed, 1),
    }
