"""What the HA service publishes per group, for the API, the CLI and the dashboard."""

from __future__ import annotations

from typing import Protocol

import attrs

from appliance.config.values import IPAddress
from appliance.intent import HaRole
from appliance.state import StateKey


@attrs.frozen
class GroupStatus:
    id: int
    interface: str
    state: str  # INIT, BACKUP, MASTER, FAULT (VRRP names)
    role: HaRole
    priority: int  # effective: configured + tracking weights, clamped to 1-254
    configured_priority: int
    master_address: IPAddress | None
    vips: tuple[IPAddress, ...]
    transitions: int
    last_reason: str | None
    #: adverts received for the group and discarded, by reason (``auth-forged``,
    #: ``auth-replayed``, ``bad-ttl``, ``unknown-peer``...): each one changed nothing
    rejected: dict[str, int] = attrs.field(factory=dict)
    received: int = 0  # adverts accepted
    sent: int = 0  # adverts sent (one per destination)
    #: an operator's runtime priority (API/CLI), in place of the configured one until cleared
    priority_override: int | None = None
    #: the longest wait between two adverts sent as MASTER (s; a backup's deadline is its
    #: Master_Down_Interval)
    advert_gap_max_s: float = 0.0


def group_status_key(group_id: int) -> StateKey[GroupStatus]:
    return StateKey(f"ha/{group_id}/status")


class HaControl(Protocol):
    """Operator actions on the HA groups (published as a state value for the API)."""

    def set_priority(self, group_id: int, priority: int | None) -> bool: ...

    def hand_off(self, group_id: int) -> bool: ...


HA_CONTROL = StateKey[HaControl]("ha/control")
