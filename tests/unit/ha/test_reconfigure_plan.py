"""`reconfigure.plan`: how a new ``ha`` section sorts the groups (added, removed, rebuilt,
changed in place) — what decides whether a running group keeps its instance and role."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import attrs
import pytest

from appliance.config.model import Ha, HaGroup, SyncGroup, Track, TrackType
from appliance.ha.reconfigure import GroupChange, HaChanges, changed_fields, needs_rebuild, plan

V4 = ipaddress.IPv4Address("192.0.2.100")
V6 = ipaddress.IPv6Address("2001:db8::100")


def group(gid: int = 1, **changes: Any) -> HaGroup:
    return attrs.evolve(HaGroup(id=gid, interface="eth0", vips=(V4,), priority=100), **changes)


def test_same_section_changes_nothing() -> None:
    ha = Ha(groups=(group(1), group(2)))
    assert plan(ha, Ha(groups=(group(1), group(2)))) == HaChanges()
    assert plan(ha, ha).empty


def test_added_and_removed_by_id() -> None:
    changes = plan(Ha(groups=(group(1), group(2))), Ha(groups=(group(2), group(3))))
    assert changes.added == (group(3),) and changes.removed == (group(1),)
    assert changes.rebuilt == () and changes.changed == ()
    assert changes.stopped == (group(1),) and changes.started == (group(3),)


@pytest.mark.parametrize(
    "changes",
    [
        {"priority": 200},
        {"preempt": False},
        {"preempt_delay_ms": 500},
        {"advert_interval_ms": 300},
        {"track": (Track(TrackType.INTERFACE, "eth1", weight=-60),)},
        {"vips": (V4, ipaddress.IPv4Address("192.0.2.101"))},
        {"pools": ("web",)},
        {"unicast_peers": (ipaddress.IPv4Address("192.0.2.2"),)},
        {"auth_key_file": Path("/etc/triolb/ha.key")},
        {"notify": "/bin/true"},
    ],
)
def test_election_and_shell_settings_change_in_place(changes: dict[str, Any]) -> None:
    old, new = group(1), group(1, **changes)
    result = plan(Ha(groups=(old, group(2))), Ha(groups=(new, group(2))))
    assert result.changed == (GroupChange(old, new),)
    assert result.changed[0].fields == tuple(changes)
    assert result.added == result.removed == () and result.rebuilt == ()
    assert not needs_rebuild(old, new)


@pytest.mark.parametrize(
    "changes", [{"interface": "eth1"}, {"vips": (V6,)}, {"vips": (), "unicast_peers": (V6,)}]
)
def test_another_interface_or_family_rebuilds_that_group_only(
    changes: dict[str, Any],
) -> None:
    old, new = group(1), group(1, **changes)
    result = plan(Ha(groups=(old, group(2))), Ha(groups=(new, group(2))))
    assert result.rebuilt == (GroupChange(old, new),)
    assert result.stopped == (old,) and result.started == (new,)
    assert result.changed == () and result.added == result.removed == ()


def test_a_new_group_id_is_a_removal_and_an_addition() -> None:
    result = plan(Ha(groups=(group(1),)), Ha(groups=(group(7),)))
    assert result.removed == (group(1),) and result.added == (group(7),)


def test_section_settings() -> None:
    groups = (group(1), group(2))
    sync = (SyncGroup("both", (1, 2)),)
    assert plan(Ha(groups=groups), Ha(groups=groups, sync_groups=sync)).sync_changed
    timeout = plan(Ha(groups=groups), Ha(groups=groups, join_timeout_ms=5))
    assert timeout.join_timeout_changed and not timeout.empty
    assert timeout.changed == ()


def test_changed_fields_names_each_difference() -> None:
    assert changed_fields(group(), group()) == ()
    assert changed_fields(group(), group(priority=1, advert_interval_ms=20)) == (
        "priority",
        "advert_interval_ms",
    )
