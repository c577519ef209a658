"""The web server under load must not delay the protocols (issue 9): scenario 4's two real
daemons (HA, BGP to the router's BIRD, conntrack sync), 200 requests/s for 10 s on the active
node's dashboard and API (the page, the JSON documents it reads, /metrics, four open event
streams), bounded in count and time. The protocols' own timing counters must stay within
their deadlines: the longest wait between two HA adverts the active sent
(`advert_gap_max_s`) under the backup's Master_Down_Interval, and the longest wait between two
BGP KEEPALIVE/UPDATE it sent (`keepalive_gap_max_s`) under the hold time. Roles and the BGP
session do not change meanwhile."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config import load_config
from appliance.ha.instance import master_down_interval
from appliance.lab.api import LabHandle
from tests.lab.support import ctsync
from tests.lab.support.polling import wait_for

pytestmark = pytest.mark.lab

RATE, SECONDS = 200, 10
LOAD_TIMEOUT_S = 60.0
READY_S = 60.0


def _ha_group(handle: LabHandle, node: str) -> dict[str, Any]:
    (group,) = ctsync.show(handle, node, "ha")["groups"]
    assert isinstance(group, dict)
    return group


def _neighbor(handle: LabHandle, node: str) -> dict[str, Any]:
    (neighbor,) = ctsync.show(handle, node, "bgp", "neighbors")["neighbors"]
    assert isinstance(neighbor, dict)
    return neighbor


def test_dashboard_load_does_not_delay_adverts_or_keepalives(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario4", start_endpoints=True)
    configs = {node: ctsync.node_config(tmp_path, node) for node in ("node1", "node2")}
    for node, config in configs.items():
        ctsync.spawn_daemon(handle, node, config, f"{node}-daemon")
    for node in ("node1", "node2"):
        ctsync.wait_daemon_ready(handle, f"{node}-daemon")
    wait_for(lambda: ctsync.role(handle, "node1") == "active", "node1 active", READY_S)
    wait_for(
        lambda: _neighbor(handle, "node1")["state"] == "Established",
        "node1's BGP session established",
        READY_S,
    )
    backup = _ha_group(handle, "node2")
    before = (_ha_group(handle, "node1"), _neighbor(handle, "node1"))

    argv = [
        sys.executable,
        "-m",
        "tests.lab.support.api_load",
        f"--rate={RATE}",
        f"--seconds={SECONDS}",
        "--streams=4",
    ]
    result = handle.exec("node1", argv, timeout=LOAD_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    load = json.loads(result.stdout)
    print(f"load: {load}")  # for the record (`pytest -s`)
    assert load["sent"] == RATE * SECONDS and load["statuses"].get("200") == RATE * SECONDS, load
    assert load["stream_events"].get("state", 0) >= 4, load  # the streams were live

    group, neighbor = _ha_group(handle, "node1"), _neighbor(handle, "node1")
    ha = load_config(configs["node1"]).ha
    assert ha is not None
    interval_s = ha.groups[0].advert_interval_ms / 1000
    deadline_ha = master_down_interval(backup["priority"], round(interval_s * 100))
    print(
        f"advert gap max {group['advert_gap_max_s']} s (interval {interval_s} s, "
        f"deadline {deadline_ha:.3f} s); keepalive gap max {neighbor['keepalive_gap_max_s']} s "
        f"(hold time {neighbor['hold_time']} s)"
    )
    assert group["role"] == "active" and group["transitions"] == before[0]["transitions"]
    assert _ha_group(handle, "node2")["role"] == "backup"
    assert 0 < group["advert_gap_max_s"] < deadline_ha, group
    assert neighbor["state"] == "Established"
    assert neighbor["established_count"] == before[1]["established_count"]
    assert 0 < neighbor["keepalive_gap_max_s"] < neighbor["hold_time"], neighbor
