"""Everything this node keeps about one peer: identity, liveness, both streams, learnt table."""

from __future__ import annotations

import enum
import math
from collections import Counter

from .events import PeerAddr
from .receivestream import ReceiveStream
from .replay import ReplayWindow
from .sendstream import SendStream

__all__ = ["IncomingResync", "PeerChannel", "PeerState"]


class PeerState(enum.StrEnum):
    CONNECTING = "connecting"  # nothing valid heard yet
    UP = "up"
    DOWN = "down"  # silent for dead_after_s


class IncomingResync:
    """A bulk resync from the peer in progress: keys held at its BEGIN and not re-sent since."""

    __slots__ = ("count", "resync_id", "stale")

    def __init__(self, resync_id: int, stale: set[bytes]) -> None:
        self.resync_id = resync_id
        self.stale = stale
        self.count = 0


class PeerChannel:
    def __init__(self, addr: PeerAddr, send: SendStream, window: int, now: float) -> None:
        self.addr = addr
        self.state = PeerState.CONNECTING
        self.since = now  # when the current state began
        self.node_id: int | None = None
        self.epoch: int | None = None
        self.capabilities = 0
        self.replay = ReplayWindow()
        self.last_heard: float | None = None
        self.last_sent = -math.inf
        self.send = send
        self.recv = ReceiveStream(window)
        self.remote: dict[bytes, bytes] = {}
        self.resync: IncomingResync | None = None
        self.need_ack = False
        #: SnapshotWanted emitted and provide_snapshot not called yet
        self.snapshot_wanted = False
        #: when to emit the SnapshotWanted of a request made inside `provide_snapshot`
        self.snapshot_ask_at = math.inf
        #: a snapshot is needed but the peer is not up: ask when it is (ops are not queued)
        self.snapshot_deferred = False
        #: the queue overflowed while the snapshot was awaited: ask again once it is provided
        self.resnapshot = False
        self.frames_sent = 0
        self.frames_received = 0
        self.ops_received = 0
        self.resyncs_received = 0
        self.overflows = 0
        self.rejected: Counter[str] = Counter()

    def restart(self, epoch: int, node_id: int) -> None:
        """The peer is a new process: reset both directions; keep what it sent until resync.

        A snapshot request still outstanding stays so (its answer, read after it, serves the
        new process as well), and so does the queue of ops held back for it."""
        self.epoch = epoch
        self.node_id = node_id
        self.replay = ReplayWindow()
        self.send.restart()
        self.recv.reset()
        self.resync = None
        self.need_ack = False
