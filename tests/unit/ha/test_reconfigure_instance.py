"""`VrrpInstance.reconfigure`: election parameters changed in place, in virtual time (1 s
advertisement interval unless changed), two nodes on the simulated segment.

Only a change that reorders the priorities moves the role, and then by the protocol's own path
(the preempting backup discards the lower adverts and its Master_Down timer runs out); any other
change, a tie included, keeps both roles.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from appliance.ha.errors import HaError
from appliance.ha.instance import (
    InstanceConfig,
    SendAdvert,
    State,
    VrrpInstance,
    master_down_interval,
)

from .sim import Net, addr, config

MDI_150 = master_down_interval(150, 100)  # 3.4140625
MDI_100 = master_down_interval(100, 100)  # 3.609375
MDI_200 = master_down_interval(200, 100)  # 3.21875
A_LAST = MDI_150 + 6  # a's last advert before t=10: 9.4140625


def _a_master_b_backup(b: InstanceConfig | None = None) -> Net:
    """a (priority 150) MASTER from MDI_150, b (100, or ``b``) BACKUP; run to t=10."""
    net = Net(a=VrrpInstance(config(1, 150)), b=VrrpInstance(b or config(2, 100)))
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(10.0)
    assert net.masters() == ["a"] and net.state("b") is State.BACKUP
    return net


def _change(net: Net, name: str, now: float, **changes: Any) -> None:
    """Reconfigure node ``name`` at ``now`` and deliver what it sends."""
    net[name].reconfigure(attrs.evolve(net[name].config, **changes), now)
    net.act(now)


def _transitions_after(net: Net, t: float) -> list[tuple[float, str, State, State]]:
    return [tr for tr in net.transitions() if tr[0] > t]


def test_master_lowered_below_a_preempting_backup_loses_the_role() -> None:
    net = _a_master_b_backup()
    _change(net, "a", 10.0, priority=90)
    assert net["a"].priority == 90 and net.state("a") is State.MASTER  # no change by itself
    net.run_until(30.0)
    # a told b at once; b discards the lower adverts, its timer runs from a's last one at 150
    assert net.adverts("a")[6:9] == [(A_LAST, 150), (10.0, 90), (11.0, 90)]
    took_over = A_LAST + MDI_100
    assert _transitions_after(net, 10.0) == [
        (took_over, "b", State.BACKUP, State.MASTER),
        (took_over, "a", State.MASTER, State.BACKUP),
    ]
    assert net["a"].master_address == addr(2) and net["a"].master_priority == 100


def test_backup_raised_above_the_master_with_preempt_takes_over() -> None:
    net = _a_master_b_backup()
    _change(net, "b", 10.0, priority=200)
    assert net.log[-1][0] < 10.0  # a backup's change sends nothing
    net.run_until(30.0)
    took_over = A_LAST + MDI_200  # a's advert at 10.414 is discarded
    assert _transitions_after(net, 10.0) == [
        (took_over, "b", State.BACKUP, State.MASTER),
        (took_over, "a", State.MASTER, State.BACKUP),
    ]
    assert net.masters() == ["b"]


def test_backup_raised_above_the_master_without_preempt_stays_backup() -> None:
    net = _a_master_b_backup(config(2, 100, preempt=False))
    _change(net, "b", 10.0, priority=200)
    net.run_until(60.0)
    assert _transitions_after(net, 10.0) == [] and net.masters() == ["a"]
    # turning preempt on now makes the priorities decide
    _change(net, "b", 60.0, preempt=True)
    net.run_until(70.0)
    assert net.masters() == ["b"]


@pytest.mark.parametrize(
    ("node", "changes"),
    [
        ("a", {"priority": 120}),  # still above b
        ("a", {"priority": 100}),  # a tie: b only preempts a lower master
        ("a", {"priority": 254}),
        ("b", {"priority": 149}),
        ("b", {"priority": 150}),  # a tie again
        ("b", {"priority": 1}),
        ("a", {"preempt": False}),
        ("b", {"preempt": False}),
        ("a", {"preempt_delay_s": 5.0}),
        ("a", {"advert_interval_cs": 50}),
        ("a", {"advert_interval_cs": 300}),
        ("b", {"advert_interval_cs": 10}),
        ("a", {"join_gate_timeout_s": 1.0}),
    ],
)
def test_a_change_that_does_not_reorder_priorities_keeps_roles(
    node: str, changes: dict[str, Any]
) -> None:
    net = _a_master_b_backup()
    _change(net, node, 10.0, **changes)
    net.run_until(60.0)
    assert _transitions_after(net, 10.0) == []
    assert net.masters() == ["a"] and net.state("b") is State.BACKUP


def test_master_interval_change_is_advertised_at_once_and_learnt_by_the_backup() -> None:
    net = _a_master_b_backup()
    _change(net, "a", 10.0, advert_interval_cs=300)
    net.run_until(20.0)
    # at once, then on the new interval's grid
    assert [t for t, _ in net.adverts("a") if t >= 10.0] == [10.0, 13.0, 16.0, 19.0]
    sent = [e for t, n, e in net.log if t >= 10.0 and n == "a" and isinstance(e, SendAdvert)]
    assert sent and all(e.interval_cs == 300 for e in sent)
    assert net["b"].master_adver_interval_cs == 300
    assert net["b"].get_timer() == 19.0 + master_down_interval(100, 300)
    _change(net, "a", 20.0, advert_interval_cs=20)
    net.run_until(21.0)
    assert [t for t, _ in net.adverts("a") if t >= 20.0][:3] == [20.0, 20.2, 20.4]
    assert net["b"].master_adver_interval_cs == 20
    assert _transitions_after(net, 10.0) == []


def test_master_raised_advertises_its_new_priority() -> None:
    net = _a_master_b_backup()
    _change(net, "a", 10.0, priority=200)
    assert net.log[-1] == (10.0, "a", SendAdvert(200, 100))
    assert net["b"].master_priority == 200 and net["a"].master_priority == 200


def test_unchanged_config_does_nothing() -> None:
    net = _a_master_b_backup()
    before = list(net.log)
    for name in ("a", "b"):
        timer = net[name].get_timer()
        net[name].reconfigure(net[name].config, 10.0)
        assert net[name].get_timer() == timer
    net.act(10.0)
    assert net.log == before


def test_priority_change_keeps_the_tracking_delta() -> None:
    inst = VrrpInstance(config(1, 150))
    inst.set_priority_adjustment(-30, 0.0)
    inst.reconfigure(attrs.evolve(inst.config, priority=200), 0.0)
    assert inst.priority == 170


def test_changes_apply_in_every_state() -> None:
    inst = VrrpInstance(config(1, 150))
    inst.reconfigure(attrs.evolve(inst.config, priority=10), 0.0)  # INIT
    assert inst.priority == 10 and inst.events() == []
    inst.set_fault(True, 0.0)
    inst.start(0.0)
    inst.events()
    inst.reconfigure(attrs.evolve(inst.config, priority=20), 1.0)  # FAULT: sends nothing
    assert inst.state is State.FAULT and inst.events() == [] and inst.priority == 20


@pytest.mark.parametrize("changes", [{"vrid": 2}, {"primary_address": addr(9)}])
def test_another_vrid_or_source_is_another_instance(changes: dict[str, Any]) -> None:
    inst = VrrpInstance(config(1, 150))
    with pytest.raises(HaError):
        inst.reconfigure(attrs.evolve(inst.config, **changes), 0.0)
    assert inst.config == config(1, 150)
