"""The VRRP instance state machine, exactly, in virtual time (1 s advertisement interval).

With Master_Adver_Interval = 100 cs: Skew_Time = (256 - p) / 256 s and Master_Down_Interval =
3 + Skew_Time s; every value below is a binary fraction, so float equality is exact.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.config.model import HaGroup, Track, TrackType
from appliance.ha.errors import HaError, HaErrorReason
from appliance.ha.instance import (
    InstanceConfig,
    Reason,
    SendAdvert,
    State,
    StateChanged,
    VrrpInstance,
    master_down_interval,
    skew_time,
)
from appliance.ha.tracking import evaluate
from appliance.ha.wire import Advert
from appliance.intent import HaRole

from .sim import VIP, Net, addr, config

MDI_100 = 3 + 156 / 256  # 3.609375
MDI_200 = 3 + 56 / 256  # 3.21875
SKEW_100 = 156 / 256


def test_timer_formulas() -> None:
    assert skew_time(100, 100) == SKEW_100
    assert master_down_interval(100, 100) == MDI_100
    assert master_down_interval(200, 100) == MDI_200
    assert skew_time(254, 4095) == 2 * 4095 / 25600
    assert master_down_interval(1, 10) == 0.3 + 255 * 10 / 25600


def test_lone_node_becomes_master_after_master_down_interval() -> None:
    inst = VrrpInstance(config(1))
    assert inst.get_timer() is None
    inst.start(0.0)
    assert inst.events() == [StateChanged(State.INIT, State.BACKUP, Reason.STARTED)]
    assert inst.get_timer() == MDI_100
    inst.handle_timer(MDI_100 - 0.001)  # early wake-up: nothing
    assert inst.state is State.BACKUP and inst.events() == []
    inst.handle_timer(MDI_100)
    assert inst.events() == [  # the state first: the shell announces before it advertises
        StateChanged(State.BACKUP, State.MASTER, Reason.MASTER_DOWN),
        SendAdvert(100, 100),
    ]
    assert inst.state.role is HaRole.ACTIVE
    for k in range(1, 4):
        assert inst.get_timer() == MDI_100 + k
        inst.handle_timer(MDI_100 + k)
        assert inst.events() == [SendAdvert(100, 100)]


def test_the_longest_advert_gap_is_measured_per_mastership() -> None:
    """``advert_gap_max``: the longest wait between two adverts sent as MASTER — a timer
    handled late (a slow event loop) shows in it; a new mastership starts afresh."""
    inst = VrrpInstance(config(1))
    inst.start(0.0)
    inst.handle_timer(MDI_100)
    assert inst.state is State.MASTER and inst.advert_gap_max == 0.0
    inst.handle_timer(MDI_100 + 1)
    assert inst.advert_gap_max == 1.0
    inst.handle_timer(MDI_100 + 2.5)  # handled half a second late
    assert inst.advert_gap_max == 1.5
    inst.events()
    inst.stop(10.0)  # INIT: the next mastership measures from its own first advert
    inst.start(10.0)
    inst.handle_timer(10.0 + MDI_100)
    inst.handle_timer(11.0 + MDI_100)
    assert inst.advert_gap_max == 1.5  # the largest so far, not a gap across the restart


def test_two_nodes_elect_higher_priority() -> None:
    net = Net(a=VrrpInstance(config(1, 200)), b=VrrpInstance(config(2, 100)))
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(30.0)
    assert net.transitions("a") == [
        (0.0, "a", State.INIT, State.BACKUP),
        (MDI_200, "a", State.BACKUP, State.MASTER),
    ]
    assert net.transitions("b") == [(0.0, "b", State.INIT, State.BACKUP)]
    assert [t for t, _ in net.adverts("a")] == [MDI_200 + k for k in range(27)]
    assert net.adverts("b") == []
    assert net["b"].master_address == addr(1) and net["b"].master_priority == 200


def test_learns_master_adver_interval() -> None:
    b = VrrpInstance(config(2, 100))
    b.start(0.0)
    b.receive_advert(Advert(1, 200, 200, (VIP,)), addr(1), 1.0)
    assert b.master_adver_interval_cs == 200
    assert b.get_timer() == 1.0 + 6 + 2 * 156 / 256


def test_tie_broken_by_higher_address() -> None:
    net = Net(a=VrrpInstance(config(1)), b=VrrpInstance(config(2)))
    net.connected["a"] = net.connected["b"] = False
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(5.0)
    assert net.masters() == ["a", "b"]
    net.connected["a"] = net.connected["b"] = True
    net.run_until(MDI_100 + 2)  # both advertise at MDI_100 + 2: a first, b answers
    assert net.masters() == ["b"]
    assert net.transitions("a")[-1] == (MDI_100 + 2, "a", State.MASTER, State.BACKUP)


def test_master_tie_from_lower_address_answers() -> None:
    b = VrrpInstance(config(2))
    b.start(0.0)
    b.handle_timer(MDI_100)
    b.events()
    b.receive_advert(Advert(1, 100, 100, (VIP,)), addr(1), 4.0)
    assert b.state is State.MASTER
    assert b.events() == [SendAdvert(100, 100)]
    assert b.get_timer() == 5.0


def _a_master_b_joins(b: VrrpInstance | InstanceConfig, b_start: float = 10.0) -> Net:
    """a (priority 100) alone from 0: MASTER at MDI_100, adverts at MDI_100 + k; b starts."""
    net = Net(
        a=VrrpInstance(config(1, 100)), b=b if isinstance(b, VrrpInstance) else VrrpInstance(b)
    )
    net["a"].start(0.0)
    net.run_until(b_start)
    net["b"].start(b_start)
    return net


def test_preempt() -> None:
    net = _a_master_b_joins(config(2, 200))
    net.run_until(30.0)
    # b discards a's lower adverts; its Master_Down_Timer from the start runs out
    assert net.transitions("b")[-1] == (10.0 + MDI_200, "b", State.BACKUP, State.MASTER)
    assert net.transitions("a")[-1] == (10.0 + MDI_200, "a", State.MASTER, State.BACKUP)
    assert net.masters() == ["b"]


def test_no_preempt() -> None:
    net = _a_master_b_joins(config(2, 200, preempt=False))
    net.run_until(60.0)
    assert net.masters() == ["a"]
    assert net.transitions("b") == [(10.0, "b", State.INIT, State.BACKUP)]


def test_preempt_delay() -> None:
    net = _a_master_b_joins(config(2, 200, preempt_delay_s=5.0))
    net.run_until(60.0)
    # a advertises at MDI_100 + k; b first sees it at 10.609375 and accepts it for 5 s: the
    # last accepted advert is at 14.609375 (15.609375 is 5 s later and is discarded)
    assert net.transitions("b")[-1] == (14.609375 + MDI_200, "b", State.BACKUP, State.MASTER)
    assert net.masters() == ["b"]


def test_priority_zero_handoff_within_skew_time() -> None:
    net = Net(a=VrrpInstance(config(1, 200)), b=VrrpInstance(config(2, 100)))
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(20.0)
    net["a"].stop(20.0)
    net.run_until(30.0)
    assert net.adverts("a")[-1] == (20.0, 0)
    assert net.transitions("a")[-1] == (20.0, "a", State.MASTER, State.INIT)
    assert net.transitions("b")[-1] == (20.0 + SKEW_100, "b", State.BACKUP, State.MASTER)
    assert net["a"].get_timer() is None


def test_master_answers_priority_zero() -> None:
    a = VrrpInstance(config(1))
    a.start(0.0)
    a.handle_timer(MDI_100)
    a.events()
    a.receive_advert(Advert(1, 0, 100, (VIP,)), addr(2), 5.0)
    assert a.events() == [SendAdvert(100, 100)]
    assert a.get_timer() == 6.0


@pytest.mark.parametrize(("connect_at", "healed_at"), [(10.0, 10.21875), (10.5, 10.609375)])
def test_split_brain_heals_within_one_interval(connect_at: float, healed_at: float) -> None:
    net = Net(a=VrrpInstance(config(1, 200)), b=VrrpInstance(config(2, 100)))
    net.connected["a"] = net.connected["b"] = False
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(connect_at)
    assert net.masters() == ["a", "b"]
    net.connected["a"] = net.connected["b"] = True
    net.run_until(connect_at + 1.0)
    assert net.masters() == ["a"]
    assert net.transitions("b")[-1] == (healed_at, "b", State.MASTER, State.BACKUP)
    assert healed_at - connect_at <= 1.0


def test_fault_and_back() -> None:
    net = Net(a=VrrpInstance(config(1, 200)), b=VrrpInstance(config(2, 100)))
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(10.0)
    net["a"].set_fault(True, 10.0)
    net.run_until(20.0)
    assert net.adverts("a")[-1] == (10.0, 0)
    assert net.transitions("a")[-1] == (10.0, "a", State.MASTER, State.FAULT)
    assert net.transitions("b")[-1] == (10.0 + SKEW_100, "b", State.BACKUP, State.MASTER)
    assert net["a"].get_timer() is None
    assert net["a"].state.role is HaRole.FAULT
    net["a"].set_fault(False, 20.0)
    net.run_until(40.0)
    assert net.transitions("a")[-2:] == [
        (20.0, "a", State.FAULT, State.BACKUP),
        (20.0 + MDI_200, "a", State.BACKUP, State.MASTER),  # preempts b again
    ]
    assert net.masters() == ["a"]


def test_fault_before_start() -> None:
    inst = VrrpInstance(config(1))
    inst.set_fault(True, 0.0)
    inst.start(0.0)
    assert inst.events() == [StateChanged(State.INIT, State.FAULT, Reason.FAULT)]
    assert inst.get_timer() is None
    inst.receive_advert(Advert(1, 50, 100, (VIP,)), addr(2), 1.0)
    assert inst.events() == []
    inst.set_fault(False, 2.0)
    assert inst.events() == [StateChanged(State.FAULT, State.BACKUP, Reason.FAULT_CLEARED)]
    assert inst.get_timer() == 2.0 + MDI_100


def test_tracking_weight_changes_election() -> None:
    net = Net(a=VrrpInstance(config(1, 150)), b=VrrpInstance(config(2, 100)))
    net["a"].start(0.0)
    net["b"].start(0.0)
    net.run_until(10.0)
    mdi_150 = 3 + 106 / 256
    assert net.masters() == ["a"]
    uplink = Track(TrackType.INTERFACE, "eth1", weight=-60)
    result = evaluate([uplink], {(TrackType.INTERFACE, "eth1"): "down"})
    assert (result.delta, result.fault) == (-60, False)
    net["a"].set_priority_adjustment(result.delta, 10.0)
    assert net["a"].priority == 90
    net.run_until(20.0)
    last_150 = 6 + mdi_150  # 9.4140625
    assert net.adverts("a")[-5:] == [
        (last_150, 150),
        (10.0, 90),
        (11.0, 90),
        (12.0, 90),
        (13.0, 90),
    ]
    # b discards the lower adverts; its timer runs from a's last advert at priority 150
    took_over = last_150 + MDI_100
    assert net.transitions("b")[-1] == (took_over, "b", State.BACKUP, State.MASTER)
    assert net.transitions("a")[-1] == (took_over, "a", State.MASTER, State.BACKUP)


def test_effective_priority_is_clamped() -> None:
    inst = VrrpInstance(config(1, 100))
    inst.set_priority_adjustment(-500, 0.0)
    assert inst.priority == 1
    inst.set_priority_adjustment(500, 0.0)
    assert inst.priority == 254


def test_join_gate_blocks_preemption_until_opened() -> None:
    b = VrrpInstance(config(2, 200, join_gate_timeout_s=30.0))
    b.set_join_gate(False, 10.0)
    net = _a_master_b_joins(b)
    net.run_until(20.0)
    assert net.masters() == ["a"]
    b.set_join_gate(True, 20.0)
    net.run_until(30.0)
    # last accepted advert of a at 19.609375
    assert net.transitions("b")[-1] == (19.609375 + MDI_200, "b", State.BACKUP, State.MASTER)


def test_join_gate_times_out() -> None:
    b = VrrpInstance(config(2, 200, join_gate_timeout_s=30.0))
    b.set_join_gate(False, 10.0)
    net = _a_master_b_joins(b)
    net.run_until(39.9)
    assert net.masters() == ["a"] and not b.join_gate_open
    net.run_until(50.0)
    assert b.join_gate_open
    assert net.transitions("b")[-1] == (39.609375 + MDI_200, "b", State.BACKUP, State.MASTER)


def test_join_gate_still_takes_over_from_a_gone_master() -> None:
    b = VrrpInstance(config(2, 200, join_gate_timeout_s=300.0))
    b.set_join_gate(False, 10.0)
    net = _a_master_b_joins(b)
    net.run_until(20.0)
    net.connected["a"] = False  # a dies silently
    net.run_until(30.0)
    assert net.transitions("b")[-1] == (19.609375 + MDI_200, "b", State.BACKUP, State.MASTER)
    assert not b.join_gate_open


def test_ignores_other_vrid_and_own_adverts() -> None:
    b = VrrpInstance(config(2))
    b.start(0.0)
    b.receive_advert(Advert(2, 200, 100, (VIP,)), addr(1), 1.0)
    b.receive_advert(Advert(1, 200, 100, (VIP,)), addr(2), 1.0)
    assert b.get_timer() == MDI_100


def test_stop_backup_and_restart() -> None:
    b = VrrpInstance(config(2))
    b.start(0.0)
    b.stop(1.0)
    assert b.events()[-1] == StateChanged(State.BACKUP, State.INIT, Reason.STOPPED)
    assert b.get_timer() is None
    b.start(2.0)
    assert b.get_timer() == 2.0 + MDI_100


@pytest.mark.parametrize("priority", [0, 255, 300])
def test_priority_out_of_range_rejected(priority: int) -> None:
    with pytest.raises(HaError) as e:
        config(1, priority)
    assert e.value.reason is HaErrorReason.BAD_CONFIG


def test_from_group() -> None:
    group = HaGroup(
        id=7,
        interface="eth0",
        vips=(VIP,),
        priority=150,
        preempt=False,
        preempt_delay_ms=2500,
        advert_interval_ms=1000,
    )
    cfg = InstanceConfig.from_group(group, addr(1), join_gate_timeout_s=5.0)
    assert cfg == InstanceConfig(7, addr(1), 150, 100, False, 2.5, 5.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 254), min_size=2, max_size=4),
    st.lists(st.floats(0, 5, allow_nan=False), min_size=4, max_size=4),
)
def test_property_one_master_with_highest_priority(
    priorities: list[int], starts: list[float]
) -> None:
    net = Net(**{f"n{i}": VrrpInstance(config(i + 1, p)) for i, p in enumerate(priorities)})
    net.connected = dict.fromkeys(net.nodes, False)
    for i, name in enumerate(net.nodes):
        net[name].start(starts[i])
    net.run_until(10.0)  # partitioned: everyone is master
    net.connected = dict.fromkeys(net.nodes, True)
    net.run_until(30.0)
    masters = net.masters()
    assert len(masters) == 1
    best = max(priorities)
    assert net[masters[0]].priority == best
    if priorities.count(best) == 1:
        return
    # equal best priorities: the master is the higher address
    tied = [ipaddress.IPv4Address(addr(i + 1)) for i, p in enumerate(priorities) if p == best]
    assert net[masters[0]].config.primary_address == max(tied)


def test_a_late_timer_does_not_stretch_the_advert_interval() -> None:
    inst = VrrpInstance(config(1))
    inst.start(0.0)
    inst.handle_timer(MDI_100)
    inst.events()
    inst.handle_timer(MDI_100 + 1.004)  # woken 4 ms late: the next advert stays on the grid
    assert inst.events() == [SendAdvert(100, 100)]
    assert inst.get_timer() == MDI_100 + 2
    inst.handle_timer(MDI_100 + 3.5)  # more than an interval late: one advert, then onwards
    assert inst.events() == [SendAdvert(100, 100)]
    assert inst.get_timer() == MDI_100 + 4.5
