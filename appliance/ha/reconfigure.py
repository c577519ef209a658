"""What a new ``ha`` section changes, group by group: the plan the HA service applies on reload.

Pure (no I/O): `plan` compares the running section with the new one and sorts every group into

* added (a new id) and removed (an id gone): started as at start-up / resigned and stopped;
* rebuilt: the same id on another interface or address family, so another socket and source
  address (another VRRP router, as far as the peers can tell): stopped and started anew;
* changed: anything else (priority, preempt, advert interval, tracks and their weights, VIPs,
  peers, key file, notify hook): applied to the running instance and its shell in place, so
  the role only changes when the new priorities say so.

Sync group and join timeout changes apply to the running groups as well (``sync_changed``,
`VrrpInstance.reconfigure` with the new timeout).
"""

from __future__ import annotations

import attrs

from appliance.config.model import Ha, HaGroup

__all__ = ["GroupChange", "HaChanges", "changed_fields", "families", "needs_rebuild", "plan"]


@attrs.frozen
class GroupChange:
    """One group present before and after, with its old and new configuration."""

    old: HaGroup
    new: HaGroup

    @property
    def id(self) -> int:
        return self.new.id

    @property
    def fields(self) -> tuple[str, ...]:
        return changed_fields(self.old, self.new)


@attrs.frozen
class HaChanges:
    """The difference between two ``ha`` sections, by group id."""

    added: tuple[HaGroup, ...] = ()
    removed: tuple[HaGroup, ...] = ()
    rebuilt: tuple[GroupChange, ...] = ()
    changed: tuple[GroupChange, ...] = ()
    sync_changed: bool = False
    join_timeout_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.removed
            or self.rebuilt
            or self.changed
            or self.sync_changed
            or self.join_timeout_changed
        )

    @property
    def stopped(self) -> tuple[HaGroup, ...]:
        """The groups whose running instance stops: removed, and rebuilt ones (old config)."""
        return (*self.removed, *(c.old for c in self.rebuilt))

    @property
    def started(self) -> tuple[HaGroup, ...]:
        """The groups that start a fresh instance: added, and rebuilt ones (new config)."""
        return (*self.added, *(c.new for c in self.rebuilt))


def changed_fields(old: HaGroup, new: HaGroup) -> tuple[str, ...]:
    """The names of the group settings that differ (for the log)."""
    return tuple(
        f.name for f in attrs.fields(HaGroup) if getattr(old, f.name) != getattr(new, f.name)
    )


def families(group: HaGroup) -> frozenset[int]:
    """The address families of the group's VIPs and peers (one, in a valid config)."""
    return frozenset(a.version for a in (*group.vips, *group.unicast_peers))


def needs_rebuild(old: HaGroup, new: HaGroup) -> bool:
    """Whether ``new`` is another VRRP router than ``old``: another interface or address
    family means another socket and advert source address."""
    return old.interface != new.interface or families(old) != families(new)


def plan(old: Ha, new: Ha) -> HaChanges:
    """What applying ``new`` over the running ``old`` changes; groups keep their order."""
    before = {g.id: g for g in old.groups}
    after = {g.id: g for g in new.groups}
    pairs = [GroupChange(before[g.id], g) for g in new.groups if g.id in before]
    return HaChanges(
        added=tuple(g for g in new.groups if g.id not in before),
        removed=tuple(g for g in old.groups if g.id not in after),
        rebuilt=tuple(c for c in pairs if needs_rebuild(c.old, c.new)),
        changed=tuple(c for c in pairs if c.old != c.new and not needs_rebuild(c.old, c.new)),
        sync_changed=old.sync_groups != new.sync_groups,
        join_timeout_changed=old.join_timeout_ms != new.join_timeout_ms,
    )
