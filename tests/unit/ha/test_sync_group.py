"""Sync groups: members follow each other into FAULT and out of MASTER."""

from __future__ import annotations

from appliance.ha.instance import (
    InstanceConfig,
    Reason,
    SendAdvert,
    State,
    StateChanged,
    VrrpInstance,
)
from appliance.ha.sync_group import SyncGroupCoordinator
from appliance.ha.wire import Advert

from .sim import VIP, addr

MDI_100 = 3 + 156 / 256


def _pair() -> tuple[SyncGroupCoordinator, VrrpInstance, VrrpInstance]:
    g1 = VrrpInstance(InstanceConfig(vrid=1, primary_address=addr(1)))
    g2 = VrrpInstance(InstanceConfig(vrid=2, primary_address=addr(1)))
    sync = SyncGroupCoordinator("web", {1: g1, 2: g2})
    g1.start(0.0)
    g2.start(0.0)
    g1.handle_timer(MDI_100)
    g2.handle_timer(MDI_100)
    sync.pump(MDI_100)
    return sync, g1, g2


def test_pump_tags_events() -> None:
    g1 = VrrpInstance(InstanceConfig(vrid=1, primary_address=addr(1)))
    sync = SyncGroupCoordinator("web", {1: g1})
    g1.start(0.0)
    assert sync.pump(0.0) == [(1, StateChanged(State.INIT, State.BACKUP, Reason.STARTED))]


def test_fault_of_one_member_faults_all() -> None:
    sync, g1, g2 = _pair()
    assert (g1.state, g2.state) == (State.MASTER, State.MASTER)
    g1.set_fault(True, 10.0)
    events = sync.pump(10.0)
    assert events == [
        (1, SendAdvert(0, 100)),
        (1, StateChanged(State.MASTER, State.FAULT, Reason.FAULT)),
        (2, SendAdvert(0, 100)),
        (2, StateChanged(State.MASTER, State.FAULT, Reason.FAULT)),
    ]
    assert g2.faulted_by_sync and not g2.local_fault
    g1.set_fault(False, 20.0)
    sync.pump(20.0)
    assert (g1.state, g2.state) == (State.BACKUP, State.BACKUP)
    assert g1.get_timer() == g2.get_timer() == 20.0 + MDI_100


def test_fault_held_while_any_member_faulted() -> None:
    sync, g1, g2 = _pair()
    g1.set_fault(True, 10.0)
    g2.set_fault(True, 10.0)
    sync.pump(10.0)
    g1.set_fault(False, 11.0)
    sync.pump(11.0)
    assert (g1.state, g2.state) == (State.FAULT, State.FAULT)  # g2's own fault holds g1
    g2.set_fault(False, 12.0)
    sync.pump(12.0)
    assert (g1.state, g2.state) == (State.BACKUP, State.BACKUP)


def test_step_down_followed() -> None:
    sync, g1, g2 = _pair()
    g1.receive_advert(Advert(1, 200, 100, (VIP,)), addr(9), 10.0)
    events = sync.pump(10.0)
    assert events == [
        (1, StateChanged(State.MASTER, State.BACKUP, Reason.HIGHER_PRIORITY)),
        (2, StateChanged(State.MASTER, State.BACKUP, Reason.SYNC_GROUP)),
    ]
    assert g2.get_timer() == 10.0 + MDI_100
