"""``triolb lab demo``: scenario 2 with both appliance nodes, until Ctrl-C (or ``max_seconds``)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from appliance.lab.api import LabHandle, lab_summary, lab_up

DEMO_SCENARIO = "scenario2-bgp-active-backup"
DEMO_NODES = ("node1", "node2")
STARTUP_GRACE = 2.0


def _start_nodes(handle: LabHandle, config_dir: Path, out: TextIO) -> list[str]:
    started: list[str] = []
    for node in DEMO_NODES:
        config = config_dir / f"{DEMO_SCENARIO}-{node}.yaml"
        if not config.is_file():
            print(f"{node}: no config {config}; appliance not started", file=out)
            continue
        name = f"{node}-appliance"
        argv = [sys.executable, "-m", "appliance", "run", "--config", str(config)]
        handle.spawn(node, name, argv)
        started.append(name)
    return started


def _report_nodes(handle: LabHandle, names: list[str], out: TextIO) -> None:
    for name in names:
        record = handle.process(name)
        if handle.alive(name):
            ns = handle.ns(record.host)
            print(f"{name}: running in {ns} pid {record.pid}, log {record.log}", file=out)
        else:
            print(f"{name}: exited (see {record.log}); last lines:", file=out)
            for line in handle.log_tail(name, 10).splitlines():
                print(f"    {line}", file=out)


def run_demo(config_dir: Path, max_seconds: float | None = None, out: TextIO = sys.stdout) -> int:
    """Bring up scenario 2, start ``python -m appliance run`` on node1/node2, describe what runs
    where, wait for SIGINT/SIGTERM (or ``max_seconds``), tear everything down; returns 0."""
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        endpoint_seconds = 86400.0 if max_seconds is None else max_seconds + 60.0
        handle = lab_up(DEMO_SCENARIO, endpoint_seconds=endpoint_seconds)
        try:
            print(lab_summary(handle), file=out)
            nodes = _start_nodes(handle, config_dir, out)
            if nodes:
                stop.wait(STARTUP_GRACE if max_seconds is None else min(STARTUP_GRACE, max_seconds))
                _report_nodes(handle, nodes, out)
            triolb = f"{sys.executable} -m appliance"
            for line in (
                f"ip netns exec {handle.ns('router')} ip route  # VIP routes once BGP is up",
                f"ip netns exec {handle.ns('node1')} {triolb} show bgp neighbors",
                f"ip netns exec {handle.ns('node1')} {triolb} show bgp routes --advertised",
            ):
                print(f"  {line}", file=out)
            bound = "" if max_seconds is None else f" (at most {max_seconds:g}s)"
            print(f"demo running{bound}; Ctrl-C to stop and tear down", file=out, flush=True)
            deadline = None if max_seconds is None else time.monotonic() + max_seconds
            reported_dead: set[str] = set()
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                stop.wait(0.5)
                for name in nodes:
                    if name not in reported_dead and not handle.alive(name):
                        reported_dead.add(name)
                        print(f"{name} exited; see {handle.log_path(name)}", file=out, flush=True)
        finally:
            removed = handle.down()
            print(f"lab {handle.prefix} removed ({len(removed)} namespaces)", file=out, flush=True)
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
    return 0
