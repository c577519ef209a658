"""Conntrack sync: replicate connection-tracking entries to peer nodes (issue 7).

`core.SyncCore` is the pure protocol (frames in `frames`, streams in `sendstream` and
`receivestream`, per-peer state in `channel`, anti-replay in `replay`); `service` is its Trio
shell and `entries` the encoding of a conntrack entry into the core's opaque keys and values.
"""

from .core import (
    Apply,
    CoreConfig,
    Event,
    JoinDone,
    PeerAddr,
    PeerDown,
    PeerRestarted,
    PeerStatus,
    PeerUp,
    Rejected,
    ResyncDone,
    SnapshotWanted,
    Stale,
    SyncCore,
)
from .frames import RejectReason

__all__ = [
    "Apply",
    "CoreConfig",
    "Event",
    "JoinDone",
    "PeerAddr",
    "PeerDown",
    "PeerRestarted",
    "PeerStatus",
    "PeerUp",
    "RejectReason",
    "Rejected",
    "ResyncDone",
    "SnapshotWanted",
    "Stale",
    "SyncCore",
]
