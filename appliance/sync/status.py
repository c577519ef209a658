"""What conntrack sync publishes for `show sync` and the API: its peers (from the core) and the
shell's own counters (capture and apply)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from appliance.state import StateKey

from .core import PeerStatus

__all__ = ["SYNC_STATUS", "SyncStatus"]


@attrs.frozen
class SyncStatus:
    node_id: int
    listen: str
    #: the join's bulk resync finished (or gave up waiting): HA may preempt
    resynced: bool
    peers: tuple[PeerStatus, ...]
    #: local connection changes handed to the core (established, closed)
    captured: int = 0
    #: received entries written to the dataplane / deleted / kept because this node has the
    #: connection as its own
    applied: int = 0
    deleted: int = 0
    kept_local: int = 0
    #: entries that could not be taken or sent, by reason (unknown-service, unknown-endpoint...)
    skipped: Mapping[str, int] = attrs.field(factory=dict)
    #: full pushes because connection events were lost before sync saw them
    event_losses: int = 0
    snapshots_sent: int = 0


SYNC_STATUS = StateKey[SyncStatus]("sync/status")
