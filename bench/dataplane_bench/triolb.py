"""triolb as the load balancer: the daemon in node1 with a config derived from scenario 3's.

The config is ``examples/scenario3-bgp-ecmp-node1.yaml`` (no ``ha`` section: the node is simply
active) without its ``bgp`` section (the VIP is routed statically, as for nftables), with a
node name unique to this run (its pinned maps go under ``/sys/fs/bpf/triolb/<name>``) and two
services on the VIP, mode ``default`` (DNAT only), round robin, no health probes:
``iperf`` 5201 -> ep1:5201 and ``web`` 80 -> ep1..ep3:80.

The daemon is ready to forward when it logs :data:`DATAPLANE_READY` (the dataplane service has
compiled and attached its program at TC ingress on eth0 and filled the maps). If that event
does not come within the bound, the variant is reported as an error: nothing is measured.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from appliance.config import load_config
from appliance.lab.api import LabHandle

from .paths import ENDPOINTS, HTTP_PORT, IPERF_PORT, LB_NODE, THROUGHPUT_ENDPOINT, VIP

REPO_DIR = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_DIR / "examples" / "scenario3-bgp-ecmp-node1.yaml"
DAEMON = "triolb-daemon"
#: Log event of the daemon once its dataplane forwards (program attached, maps filled).
DATAPLANE_READY = "dataplane_ready"
DAEMON_READY = "daemon_ready"
DATAPLANE_SERVICE = "dataplane"
PIN_ROOT = Path("/sys/fs/bpf/triolb")
POLL_S = 0.1


class TriolbUnavailable(RuntimeError):
    """The daemon did not come up with a forwarding dataplane."""


def node_name() -> str:
    return f"dpbench-{os.getpid()}"


def daemon_config(name: str) -> dict[str, Any]:
    """The scenario-3 example for node1, adapted as described in the module docstring."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc.pop("bgp", None)
    doc.pop("ha", None)
    doc["node"]["name"] = name
    doc["services"] = [
        {
            "name": "iperf",
            "vip": VIP,
            "port": IPERF_PORT,
            "mode": "default",
            "selection": "roundrobin",
            "endpoints": [{"address": ENDPOINTS[THROUGHPUT_ENDPOINT], "port": IPERF_PORT}],
        },
        {
            "name": "web",
            "vip": VIP,
            "port": HTTP_PORT,
            "mode": "default",
            "selection": "roundrobin",
            "endpoints": [{"address": ip, "port": HTTP_PORT} for ip in ENDPOINTS.values()],
        },
    ]
    return doc


def write_config(workdir: Path, doc: dict[str, Any]) -> Path:
    """Write and validate the config (a bad one fails here, not in the daemon's log)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "triolb-node1.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_config(path)
    return path


def daemon_events(lab: LabHandle) -> list[dict[str, Any]]:
    """The JSON log lines of the daemon so far."""
    try:
        text = daemon_log(lab).read_text(errors="replace")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def start_daemon(lab: LabHandle, config: Path, timeout_s: float) -> dict[str, Any]:
    """Spawn the daemon in node1 and wait (at most ``timeout_s``) for ``dataplane_ready``.

    Returns facts for the report (time to ready, the ready event); raises
    :class:`TriolbUnavailable` (the daemon is left running: the caller stops it)."""
    argv = [sys.executable, "-m", "appliance", "run", "--config", str(config)]
    lab.spawn(LB_NODE, DAEMON, [*argv, "--log-format", "json"])
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        events = daemon_events(lab)
        names = [str(event.get("event")) for event in events]
        if DATAPLANE_READY in names:
            ready = events[names.index(DATAPLANE_READY)]
            return {"ready_after_s": round(time.monotonic() - started, 2), "ready_event": ready}
        if DAEMON_READY in names:
            services = events[names.index(DAEMON_READY)].get("services", [])
            if DATAPLANE_SERVICE not in services:
                raise TriolbUnavailable(
                    f"the daemon started without a {DATAPLANE_SERVICE!r} service "
                    f"(services: {services}): no eBPF dataplane to measure"
                )
        if not lab.alive(DAEMON):
            raise TriolbUnavailable("the daemon exited before its dataplane was ready")
        if time.monotonic() >= deadline:
            raise TriolbUnavailable(f"no {DATAPLANE_READY!r} event within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def stop_daemon(lab: LabHandle, name: str) -> None:
    """Stop the daemon, detach what it left on node1's eth0, remove its pin directory."""
    if any(record.name == DAEMON for record in lab.processes):
        lab.stop(DAEMON, timeout=10.0)
    # the program survives the daemon by design (state survives restarts): take it off eth0
    lab.exec(LB_NODE, ["tc", "qdisc", "del", "dev", "eth0", "clsact"], timeout=10)
    pins = PIN_ROOT / name
    if pins.is_dir():
        shutil.rmtree(pins, ignore_errors=True)


def daemon_log(lab: LabHandle) -> Path:
    """The daemon's log file (kept after the daemon is stopped, until the lab is removed)."""
    return lab.log_dir / f"{DAEMON}.log"


def log_tail(lab: LabHandle, lines: int = 15) -> list[str]:
    try:
        return daemon_log(lab).read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return []
