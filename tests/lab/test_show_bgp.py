"""`triolb run` with BGP against the lab's BIRD, read back with `triolb show bgp …`."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.api import LabHandle

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).parents[2] / "examples"
TRIOLB = [sys.executable, "-m", "appliance"]


def _show(handle: LabHandle, *args: str) -> Any:
    result = handle.exec("node1", [*TRIOLB, "show", "--json", *args], timeout=20)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_show_bgp_against_a_running_daemon(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario3", start_endpoints=False)
    config = EXAMPLES / "scenario3-bgp-ecmp-node1.yaml"
    handle.spawn("node1", "daemon", [*TRIOLB, "run", "--config", str(config)])
    handle.wait_for_log("daemon", "daemon_ready")

    def established() -> bool:
        neighbors = _show(handle, "bgp", "neighbors")["neighbors"]
        return bool(neighbors) and neighbors[0]["state"] == "Established"

    _until(established, "the session to the router")
    neighbor = _show(handle, "bgp", "neighbors")["neighbors"][0]
    assert neighbor["address"] == "192.168.80.254"
    assert neighbor["asn"] == 65101
    assert neighbor["prefixes_advertised"] == 1

    advertised = _show(handle, "bgp", "routes", "--advertised")["routes"]
    assert [(r["prefix"], r["med"], r["as_path"]) for r in advertised] == [
        ("198.51.100.10/32", 10, "65100")
    ]
    assert "198.51.100.10/32" in handle.birdc("show route 198.51.100.10/32")

    table = handle.exec("node1", [*TRIOLB, "show", "bgp", "neighbors"], timeout=20)
    assert "192.168.80.254" in table.stdout and "Established" in table.stdout

    bad = handle.exec("node1", [*TRIOLB, "show", "bgp", "routes", "--peer", "nonsense"], timeout=20)
    assert bad.returncode == 1
    assert "peer" in bad.stderr or "address" in bad.stderr
