"""What a running demo tells other commands (``triolb lab failover``): ``demo.json`` in the
demo's work directory, inside the lab's log directory (so it goes with the lab).

A demo is found like ``triolb lab status`` finds labs: from the lab state files, keeping the
labs whose owner is alive and that carry a ``demo.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from appliance.lab.lifecycle import lab_status
from appliance.lab.state import log_dir

DEMO_DIR = "demo"
INFO_FILE = "demo.json"
TRAFFIC_STATUS = "traffic.status.json"


def workdir(prefix: str) -> Path:
    return log_dir(prefix) / DEMO_DIR


@attrs.define
class DemoInfo:
    """The demo lab's prefix, each node's dashboard port on the root namespace's loopback."""

    prefix: str
    dashboards: dict[str, int]
    owner_pid: int

    @property
    def traffic_status(self) -> Path:
        return workdir(self.prefix) / TRAFFIC_STATUS

    def url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.dashboards[node]}/"

    def save(self) -> None:
        path = workdir(self.prefix) / INFO_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(attrs.asdict(self), indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, prefix: str) -> DemoInfo | None:
        try:
            data: dict[str, Any] = json.loads((workdir(prefix) / INFO_FILE).read_text())
        except (OSError, ValueError):
            return None
        dashboards = {str(k): int(v) for k, v in dict(data["dashboards"]).items()}
        return cls(str(data["prefix"]), dashboards, int(data["owner_pid"]))


def running_demos() -> list[DemoInfo]:
    """The demos whose lab is up and whose ``triolb lab demo`` process is alive."""
    found = []
    for lab in lab_status():
        if lab.get("owner_alive") and lab.get("scenario"):
            info = DemoInfo.load(str(lab["prefix"]))
            if info is not None:
                found.append(info)
    return found


def find_demo(prefix: str | None = None) -> DemoInfo:
    """The one running demo (or the one of ``prefix``); LookupError naming what was found."""
    demos = running_demos()
    if prefix is not None:
        demos = [d for d in demos if d.prefix == prefix]
    if len(demos) != 1:
        names = ", ".join(d.prefix for d in demos) or "none"
        raise LookupError(f"want exactly one running demo lab, found {names}")
    return demos[0]
