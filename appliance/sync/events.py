"""What `SyncCore` tells its shell: events (drained one by one) and per-peer status."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .frames import Op

__all__ = [
    "Apply",
    "Event",
    "JoinDone",
    "PeerAddr",
    "PeerDown",
    "PeerRestarted",
    "PeerStatus",
    "PeerUp",
    "Rejected",
    "ResyncDone",
    "SnapshotWanted",
    "Stale",
]

#: a peer as configured: (IP address text, UDP port)
PeerAddr = tuple[str, int]


@attrs.frozen
class Apply:
    """Changes learnt from ``peer``, in its order; a None value is a delete."""

    peer: PeerAddr
    ops: tuple[Op, ...]


@attrs.frozen
class Stale:
    """Keys ``peer`` no longer has (a resync from it did not carry them). Unlike a delete in
    `Apply` this is no statement that the connection ended: the peer may have lost its table
    (programs and maps removed) while this node took its connections over, so the shell
    decides (it keeps a connection it has forwarded itself)."""

    peer: PeerAddr
    keys: tuple[bytes, ...]


@attrs.frozen
class SnapshotWanted:
    """``peer`` needs this node's whole table: answer with `SyncCore.provide_snapshot`."""

    peer: PeerAddr


@attrs.frozen
class PeerUp:
    peer: PeerAddr
    node_id: int


@attrs.frozen
class PeerDown:
    """``peer`` was silent for ``dead_after_s``; what it sent is kept (`SyncCore.remote_table`)."""

    peer: PeerAddr


@attrs.frozen
class PeerRestarted:
    """``peer`` came back with a new epoch: a new process, whose table is about to be resynced."""

    peer: PeerAddr
    node_id: int


@attrs.frozen
class ResyncDone:
    """A bulk resync from ``peer`` completed (what it no longer has reported by `Stale`)."""

    peer: PeerAddr
    entries: int


@attrs.frozen
class JoinDone:
    """Once after `SyncCore.join`: who resynced to this node and who was missed."""

    resynced: tuple[PeerAddr, ...]
    missed: tuple[PeerAddr, ...]


@attrs.frozen
class Rejected:
    """A discarded datagram (``reason`` is a `RejectReason` value); nothing else changed."""

    source: PeerAddr
    reason: str


Event = (
    Apply
    | Stale
    | SnapshotWanted
    | PeerUp
    | PeerDown
    | PeerRestarted
    | ResyncDone
    | JoinDone
    | Rejected
)


@attrs.frozen
class PeerStatus:
    """One peer as `show sync` presents it. Counters run since this process started."""

    peer: PeerAddr
    node_id: int | None
    state: str  # "connecting" | "up" | "down"
    epoch: int | None
    frames_sent: int
    frames_received: int
    ops_sent: int
    ops_received: int
    retransmits: int
    queue: int  # ops waiting to be framed (incremental and snapshot)
    in_flight: int  # reliable frames sent and not yet acknowledged
    lag_s: float  # age of the oldest op not yet acknowledged, 0 when none
    resyncs_sent: int
    resyncs_received: int
    overflows: int
    last_heard_s: float | None
    rejected: Mapping[str, int]
