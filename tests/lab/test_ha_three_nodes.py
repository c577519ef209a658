"""HA election among three nodes on one segment (lab scenario ``ha3``): the highest priority is
active and the others back it up; when its link fails, the next priority takes over — not the
lowest one, and not by address (the 120 node has the lowest address). Every wait is a bounded
poll; nothing asserts on elapsed time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import HA3_NODE_ADDRESSES
from tests.lab.support.ha import (
    VIP,
    active,
    client_reaches,
    ha_states,
    node_config,
    roles,
    show_ha,
    start_daemon,
    vip_holders,
    wait_until,
)

pytestmark = pytest.mark.lab

NODES = ("node1", "node2", "node3")
# node3 (192.168.80.251, the lowest address) is second: an election by address would pick node2
PRIORITIES = {"node1": 150, "node3": 120, "node2": 100}
# 1 s adverts: the two backups' Master_Down_Intervals (RFC 9568 skew time) then differ by
# (120 - 100) / 256 s = 78 ms, a margin wide enough to require that node2 never takes over
INTERVAL_MS = 1000


@pytest.mark.parametrize("transport", ["multicast", "unicast"])
def test_three_nodes_elect_by_priority_and_the_next_one_takes_over(
    lab_factory: Callable[..., LabHandle], tmp_path: Path, transport: str
) -> None:
    handle = lab_factory("ha3", start_endpoints=False)
    for node in NODES:
        peers = [a for n, a in HA3_NODE_ADDRESSES.items() if n != node]
        config = node_config(
            tmp_path,
            node,
            priority=PRIORITIES[node],
            unicast_peers=peers if transport == "unicast" else [],
            advert_interval_ms=INTERVAL_MS,
        )
        start_daemon(handle, node, config)
    wait_until("node1 to become active", lambda: active(handle, "node1"))
    wait_until(
        "node1 active, node2 and node3 backup (show ha)",
        lambda: roles(handle, NODES) == {"node1": "active", "node2": "backup", "node3": "backup"},
    )
    shown = {node: show_ha(handle, node) for node in NODES}
    for node in NODES:
        assert shown[node]["configured_priority"] == PRIORITIES[node]
        assert shown[node]["master_address"] == HA3_NODE_ADDRESSES["node1"], node
        assert shown[node]["vips"] == [VIP]
        assert shown[node]["rejected"] == {}, node
    assert shown["node1"]["state"] == "master" and shown["node1"]["sent"] > 0
    assert shown["node2"]["received"] > 0 and shown["node3"]["received"] > 0
    client_reaches(handle, "node1")
    assert "master" not in ha_states(handle, "node2-daemon")

    handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
    wait_until("node3 (priority 120) to become active", lambda: active(handle, "node3"))
    wait_until(
        "node3 active, node2 backup following it, node1 in fault (show ha)",
        lambda: roles(handle, NODES) == {"node1": "fault", "node2": "backup", "node3": "active"},
    )
    assert show_ha(handle, "node2")["master_address"] == HA3_NODE_ADDRESSES["node3"]
    client_reaches(handle, "node3")
    assert vip_holders(handle) == ["node3"]
    # the lowest priority never became master, not even for a moment
    assert "master" not in ha_states(handle, "node2-daemon")
