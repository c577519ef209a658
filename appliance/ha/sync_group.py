"""Sync groups: HA instances that change state together (keepalived ``vrrp_sync_group``).

Rules, applied until nothing changes:

* while any member has a fault of its own, every other member is held in FAULT (a sync fault);
* when a member leaves MASTER for BACKUP by itself (a higher priority master appeared), every
  other member in MASTER steps down to BACKUP as well.

`SyncGroupCoordinator.pump` collects the events of all members in order, tagged with the group
id; the shell uses it in place of each instance's own `events`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .instance import Event, Reason, State, StateChanged, VrrpInstance

__all__ = ["SyncGroupCoordinator"]


class SyncGroupCoordinator:
    def __init__(self, name: str, members: Mapping[int, VrrpInstance]) -> None:
        self.name = name
        self.members = dict(members)

    def pump(self, now: float) -> list[tuple[int, Event]]:
        """Apply the sync rules to the members' pending events; all events, in order."""
        out: list[tuple[int, Event]] = []
        while True:
            self._sync_faults(now)
            batch = [(gid, ev) for gid, inst in self.members.items() for ev in inst.events()]
            if not batch:
                return out
            out.extend(batch)
            for gid, ev in batch:
                if (
                    isinstance(ev, StateChanged)
                    and ev.old is State.MASTER
                    and ev.new is State.BACKUP
                    and ev.reason is not Reason.SYNC_GROUP
                ):
                    for other_id, other in self.members.items():
                        if other_id != gid:
                            other.step_down(now, Reason.SYNC_GROUP)

    def _sync_faults(self, now: float) -> None:
        faulty = {gid for gid, inst in self.members.items() if inst.local_fault}
        for gid, inst in self.members.items():
            held = bool(faulty - {gid})
            if held != inst.faulted_by_sync:
                inst.set_sync_fault(held, now)
