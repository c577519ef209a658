"""Operator actions on running HA groups (`HaService.hand_off`, `set_priority`), two nodes on
the simulated segment of `test_reconfigure_service` (MockClock, in-memory fakes): a handoff
moves the role within the backup's Skew_Time and keeps it there; a runtime priority acts as a
configured one would, survives a reload, and clears back."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from appliance.ha.errors import HaError
from appliance.ha.instance import State, master_down_interval, skew_time
from appliance.ha.status import group_status_key
from appliance.keys import Applied
from tests.unit.ha.test_reconfigure_service import Node, group, pair, segment

__all__ = ["pair", "segment"]


async def test_a_handoff_gives_the_role_away_at_once_and_keeps_it_away(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node]
) -> None:
    node1, node2 = pair
    handed = trio.current_time()
    assert node1.service.hand_off(1)
    await trio.sleep(skew_time(100, 100) + 0.05)  # node2's Skew_Time, not a Master_Down
    assert (node1.state(1), node2.state(1)) == (State.BACKUP, State.MASTER)
    assert node2.holds(1) and not node1.holds(1)
    assert trio.current_time() - handed < 1.0
    await trio.sleep(20)  # priority 1 now: node1 does not preempt back
    assert (node1.state(1), node2.state(1)) == (State.BACKUP, State.MASTER)
    assert (node1.state(2), node2.state(2)) == (State.MASTER, State.BACKUP)  # untouched
    status = node1.store.get(group_status_key(1))
    assert status is not None and (status.priority, status.priority_override) == (1, 1)
    assert status.configured_priority == 150
    assert node1.service.set_priority(1, None)  # cleared: 150 again, preempt
    await trio.sleep(master_down_interval(150, 100) + 1)
    assert (node1.state(1), node2.state(1)) == (State.MASTER, State.BACKUP)


async def test_a_runtime_priority_decides_like_a_configured_one_and_survives_reloads(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node]
) -> None:
    node1, node2 = pair
    assert node2.service.set_priority(1, 200)
    await trio.sleep(master_down_interval(200, 100) + 0.5)
    assert (node1.state(1), node2.state(1)) == (State.BACKUP, State.MASTER)
    # a reload of node2 keeps the operator's priority (it is not configuration)
    assert await node2.reload([group(1, 100, advert_interval_ms=500), group(2, 100)]) == Applied(2)
    await trio.sleep(10)
    assert node2.service.groups[1].priority == 200 and node2.state(1) is State.MASTER
    assert not node2.service.set_priority(9, 120)  # no such group
    with pytest.raises(HaError):
        node2.service.set_priority(1, 255)
    assert node2.service.groups[1].priority == 200  # a refused value changes nothing
    assert node2.service.set_priority(1, None)
    await trio.sleep(master_down_interval(150, 50) + 1)
    assert (node1.state(1), node2.state(1)) == (State.MASTER, State.BACKUP)
