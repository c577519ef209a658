"""One failover trial and the waits around it, on a running scenario-1 lab.

A trial: node1 is active and answers the client; the client probes the VIP every millisecond;
after ``lead_s`` node1's eth0 is set down; the probe goes on for ``observe_s``; the gap is the
largest interval between two consecutive replies. Then the link comes back and the bench waits,
bounded, until node1 has taken the VIP back (preempt) and answers the client again.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle

from .peers import NODES, VIP

HERE = Path(__file__).resolve().parent
PROBE = HERE / "probe.py"
ECHO = HERE / "echo.py"
CUTTER = HERE / "cutter.py"
ACTIVE = NODES[0]  # node1: the higher priority
WAIT_S = 20.0
POLL_S = 0.1
EXEC_TIMEOUT_S = 10.0
RESULT_GRACE_S = 10.0


def log(message: str) -> None:
    print(f"[failover_l2] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrialSpec:
    port: int
    interval_ms: float
    lead_s: float
    observe_s: float
    settle_s: float
    advert_ms: int
    #: cut this long after one of node1's adverts (None: whenever ``ip link`` gets to it)
    cut_phase_ms: float | None = None


class TrialError(RuntimeError):
    """A trial could not be run (a wait timed out, the probe failed)."""


def start_responders(lab: LabHandle, port: int, seconds: float) -> None:
    """A UDP echo server on every node, answering with the node's name."""
    for node in NODES:
        argv = [sys.executable, str(ECHO), f"--port={port}", f"--name={node}"]
        lab.spawn(node, f"echo-{node}", [*argv, f"--duration={seconds:.0f}"])
    for node in NODES:
        lab.wait_for_log(f"echo-{node}", "listening")


def vip_holders(lab: LabHandle) -> list[str]:
    holders = []
    for node in NODES:
        out = lab.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"], EXEC_TIMEOUT_S)
        if f" {VIP}/32 " in out.stdout:
            holders.append(node)
    return holders


def release_vip(lab: LabHandle) -> list[str]:
    """Remove the VIP from any node still holding it (after an implementation stopped)."""
    holders = vip_holders(lab)
    for node in holders:
        argv = ["ip", "addr", "del", f"{VIP}/32", "dev", "eth0"]
        lab.exec(node, argv, EXEC_TIMEOUT_S, check=True)
    return holders


def client_answered_by(lab: LabHandle, port: int, node: str, seconds: float = 2.0) -> bool:
    argv = [sys.executable, str(PROBE), "check", VIP, str(port)]
    argv += ["--expect", node, "--duration", str(seconds)]
    return lab.exec("client", argv, seconds + EXEC_TIMEOUT_S).returncode == 0


def wait_active(lab: LabHandle, port: int, node: str = ACTIVE, timeout: float = WAIT_S) -> float:
    """Wait until only ``node`` holds the VIP and answers the client; return seconds waited."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        if vip_holders(lab) == [node] and client_answered_by(lab, port, node):
            return time.monotonic() - start
        time.sleep(POLL_S)
    raise TrialError(f"{node} not active and answering after {timeout:.0f}s")


def set_link(lab: LabHandle, node: str, up: bool) -> None:
    argv = ["ip", "link", "set", "eth0", "up" if up else "down"]
    lab.exec(node, argv, EXEC_TIMEOUT_S, check=True)


def events(lab: LabHandle, name: str) -> list[dict[str, Any]]:
    lines = lab.log_path(name).read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_event(lab: LabHandle, name: str, event: str, timeout: float) -> dict[str, Any]:
    """The first JSON line of ``name``'s log whose ``event`` is ``event`` (bounded poll)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in events(lab, name) if e.get("event") == event]
        if found:
            return found[0]
        if time.monotonic() >= deadline or not lab.alive(name):
            # one last read: the process may have printed and exited since
            found = [e for e in events(lab, name) if e.get("event") == event]
            if found:
                return found[0]
            raise TrialError(f"{name}: no {event} ({lab.log_tail(name, 5)})")
        time.sleep(0.005)


def cut_link(lab: LabHandle, spec: TrialSpec) -> tuple[float, float]:
    """Take node1's link down; the monotonic times just before and just after."""
    if spec.cut_phase_ms is None:
        cut_from = time.monotonic()
        set_link(lab, ACTIVE, up=False)
        return cut_from, time.monotonic()
    argv = [sys.executable, str(CUTTER), f"--phase-ms={spec.cut_phase_ms}"]
    out = lab.exec(ACTIVE, argv, EXEC_TIMEOUT_S, check=True)
    times = json.loads(out.stdout)
    return float(times["cut_from"]), float(times["cut_done"])


def probe_argv(spec: TrialSpec) -> list[str]:
    duration = spec.lead_s + spec.observe_s
    argv = [sys.executable, str(PROBE), "run", VIP, str(spec.port)]
    return [*argv, f"--duration={duration}", f"--interval-ms={spec.interval_ms}"]


def cut_and_probe(
    lab: LabHandle, name: str, spec: TrialSpec
) -> tuple[dict[str, Any], tuple[float, float]]:
    """Probe, cut node1's link ``lead_s`` after the first reply; the probe's result and the
    monotonic times just before ``ip link set eth0 down`` ran and just after it returned."""
    lab.spawn("client", name, probe_argv(spec))
    try:
        started = wait_event(lab, name, "probe_started", 5.0)
        time.sleep(max(0.0, started["t"] + spec.lead_s - time.monotonic()))
        cut_at = cut_link(lab, spec)
        result = wait_event(lab, name, "probe_result", spec.observe_s + RESULT_GRACE_S)
    finally:
        lab.stop(name)
    return result, cut_at


def summarize_trial(result: dict[str, Any], cut_at: tuple[float, float]) -> dict[str, Any]:
    """The trial's gap and what tells whether it is the failover's."""
    top = result["top_gaps"]
    biggest = top[0] if top else None
    recovered = result["last_node"] == NODES[1] and result["tail_gap_ms"] < 100
    gap = float(biggest["ms"]) if biggest else float(result["tail_gap_ms"])
    if not recovered:
        gap = max(gap, float(result["tail_gap_ms"]))  # no reply after the cut: a lower bound
    cut_from, cut_done = cut_at
    at_cut = bool(biggest and biggest["start"] <= cut_done and biggest["end"] >= cut_from)
    return {
        "gap_ms": round(gap, 2),
        "recovered": recovered,
        "gap_at_cut": at_cut,
        "gap_nodes": [biggest["before"], biggest["after"]] if biggest else None,
        "cut_to_first_reply_ms": round((biggest["end"] - cut_done) * 1000, 2) if biggest else None,
        "gap_start_after_cut_cmd_ms": (
            round((biggest["start"] - cut_from) * 1000, 2) if biggest else None
        ),
        "cut_command_ms": round((cut_done - cut_from) * 1000, 2),
        "sent": result["sent"],
        "lost": result["lost"],
        "replies": result["nodes"],
        "second_gap_ms": top[1]["ms"] if len(top) > 1 else None,
        "probe_max_send_interval_ms": result["max_send_interval_ms"],
    }


def run_trial(lab: LabHandle, impl: str, index: int, spec: TrialSpec) -> dict[str, Any]:
    """One trial, from node1 active back to node1 active."""
    try:
        result, cut_at = cut_and_probe(lab, f"probe-{impl}-{index}", spec)
    finally:
        set_link(lab, ACTIVE, up=True)
    trial = summarize_trial(result, cut_at)
    trial["restore_s"] = round(wait_active(lab, spec.port), 2)
    time.sleep(spec.settle_s)
    return trial
