"""HA follows configuration reloads without role flaps: two daemons in the flat-L2 lab
(scenario 1), their configs edited and reloaded by SIGHUP while they run.

* a new advert interval or a priority change that keeps the order: no role change on either
  node (``ha_state`` events, `show ha`, the VIP on eth0) over many advert intervals;
* a group on an interface that does not exist: HA answers the generation with an error, the
  reload is rejected and nothing changes;
* the backup raised above the master (preempt on): it takes over and the VIP moves;
* a group removed on the master: it resigns, the backup takes over; added back, the master
  preempts again; the other group on the same nodes never changes state meanwhile.

Every wait is a bounded poll; nothing asserts on elapsed time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support import polling
from tests.lab.support.ha import node_config, two_nodes, wait_until
from tests.lab.support.ha_reload import (
    NODES,
    add_group,
    counts,
    edit_group,
    ha_states,
    holder,
    reload,
    remove_group,
    roles,
    show_groups,
    steady,
    two_group_config,
)

pytestmark = pytest.mark.lab

#: many advert intervals (300 ms after the change): long enough for a flap to show
QUIET_S = 3.0


def test_non_decisive_changes_keep_roles_and_a_raised_backup_takes_over(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    configs = {node: node_config(tmp_path, node) for node in NODES}
    handle, pid1, pid2 = two_nodes(lab_factory, configs)
    pids = {"node1": pid1, "node2": pid2}
    before = counts(handle, 1)

    # a longer advert interval on both, priorities changed in the same order (140 > 120)
    edit_group(configs["node1"], 1, advert_interval_ms=300, priority=140)
    edit_group(configs["node2"], 1, advert_interval_ms=300, priority=120)
    for node in NODES:
        assert reload(handle, node, pids[node])["error"] is None
    shown = {node: show_groups(handle, node)[1] for node in NODES}
    assert (shown["node1"]["role"], shown["node1"]["priority"]) == ("active", 140)
    assert (shown["node2"]["role"], shown["node2"]["priority"]) == ("backup", 120)
    assert shown["node2"]["master_address"] == "192.168.80.252"
    polling.holds_for(
        steady(handle, "node1", 1, before), "no role change after a non-decisive reload", QUIET_S
    )

    # an interface that does not exist: HA answers with an error, the commit is rejected and
    # the running group unchanged
    edit_group(configs["node2"], 1, interface="eth9")
    answer = reload(handle, "node2", pid2, rejected=True)
    assert answer["error"] and "eth9" in answer["error"], answer
    assert show_groups(handle, "node2")[1]["interface"] == "eth0"
    edit_group(configs["node2"], 1, interface="eth0")
    assert reload(handle, "node2", pid2)["error"] is None
    polling.holds_for(
        steady(handle, "node1", 1, before), "no role change after a rejected reload", 1.0
    )

    # the backup above the master, preempt on: it takes over, the VIP moves
    edit_group(configs["node2"], 1, priority=200)
    assert reload(handle, "node2", pid2)["error"] is None
    wait_until("node2 to take the VIP over", lambda: holder(handle, 1) == "node2")
    wait_until(
        "the roles to swap", lambda: roles(handle, 1) == {"node1": "backup", "node2": "active"}
    )
    node1, node2 = (ha_states(handle, node, 1)[before[node] :] for node in NODES)
    assert [(e["old"], e["new"], e["reason"]) for e in node1] == [
        ("master", "backup", "higher-priority")
    ]
    assert [(e["old"], e["new"]) for e in node2] == [("backup", "master")]


def test_a_group_removed_on_the_master_moves_and_returns_when_added_back(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    configs = {node: two_group_config(tmp_path, node) for node in NODES}
    handle, pid1, _ = two_nodes(lab_factory, configs)
    wait_until("node1 to hold group 2's VIP", lambda: holder(handle, 2) == "node1")
    other = counts(handle, 2)
    before = counts(handle, 1)

    group = remove_group(configs["node1"], 1)
    assert reload(handle, "node1", pid1)["error"] is None
    wait_until("node2 to take group 1's VIP over", lambda: holder(handle, 1) == "node2")
    resigned = ha_states(handle, "node1", 1)[before["node1"] :]
    assert [(e["old"], e["new"], e["reason"]) for e in resigned] == [("master", "init", "stopped")]
    wait_until("group 1 to leave node1's status", lambda: 1 not in show_groups(handle, "node1"))
    assert roles(handle, 1)["node2"] == "active"
    assert steady(handle, "node1", 2, other)(), "group 2 changed state"

    add_group(configs["node1"], group)
    assert reload(handle, "node1", pid1)["error"] is None
    wait_until("node1 to take group 1 back (preempt)", lambda: holder(handle, 1) == "node1")
    wait_until("the roles back", lambda: roles(handle, 1) == {"node1": "active", "node2": "backup"})
    polling.holds_for(steady(handle, "node1", 2, other), "group 2 untouched throughout", 1.0)
