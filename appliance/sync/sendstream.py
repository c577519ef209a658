"""The reliable stream from this node to one peer: sequencing, window, retransmission, queues.

What goes into the stream, in this order of priority each time the window has room:

1. control frames (RESYNC_REQUEST);
2. the bulk snapshot being pushed, if any: RESYNC_BEGIN, its entries, RESYNC_END;
3. incremental ops (upserts/deletes), as many per ENTRIES frame as fit.

So a snapshot overtakes the incremental ops still queued. That is safe because those ops are a
suffix of the op log that started no later than the table the snapshot was read from: replaying
them after it ends on the same values (see `SyncCore.provide_snapshot`). For that to hold, ops
are not framed while a snapshot is awaited (`hold_queue`): an op issued after the table was read
must not reach the peer before the older snapshot does.

Each unacknowledged frame has its own retransmission deadline, kept in a heap with lazy deletion:
an entry is live only while its frame is unacked and its generation matches. Cumulative and
selective acks free frames. The first timeout of a frame follows the measured round trip
(RFC 6298: SRTT + 4 RTTVAR, at least `rto_s`, at most `rto_max_s`; samples only from frames
sent once, Karn's rule), doubling per retry: a receiver busy applying a bulk resync acks later
than an idle one, and a fixed short timeout would resend, and make it process, much of the
window again. And as TCP restarts its timer on every ack of new data (RFC 6298 5.3), a frame
falls due only when the cumulative ack has not advanced for a timeout: while the peer works
through a full window, the frames at its end are not resent just for having waited their turn.
"""

from __future__ import annotations

import heapq
import math
import struct
from collections import deque

from .frames import FrameType, encode_upsert, seq_from_wire

__all__ = ["OutFrame", "SendStream", "SnapshotPush"]

_BEGIN = struct.Struct("!I")
_END = struct.Struct("!II")


class OutFrame:
    """One reliable frame: its payload is fixed, its header is written at every (re)send."""

    __slots__ = ("born", "gen", "ops", "payload", "retried", "rto", "sent", "seq", "type")

    def __init__(
        self,
        seq: int,
        type: FrameType,
        payload: bytes,
        ops: int,
        born: float,
        rto: float,
        sent: float = 0.0,
    ) -> None:
        self.seq = seq
        self.type = type
        self.payload = payload
        self.ops = ops  # ops carried (ENTRIES), for the counters
        self.born = born  # when its oldest op was issued, for lag
        self.rto = rto
        self.sent = sent  # first transmission, for round-trip samples
        self.retried = False  # sent more than once: no round-trip sample (Karn)
        self.gen = 0  # bumped at every (re)arming; older heap entries are dead


class SnapshotPush:
    """A bulk snapshot being fed into the stream, entry by entry."""

    __slots__ = ("begun", "created", "entries", "index", "resync_id")

    def __init__(self, resync_id: int, entries: list[tuple[bytes, bytes]], created: float) -> None:
        self.resync_id = resync_id
        self.entries = entries
        self.index = 0  # entries already framed
        self.begun = False  # RESYNC_BEGIN framed
        self.created = created


class SendStream:
    def __init__(self, *, rto_s: float, rto_max_s: float, window: int, payload_cap: int) -> None:
        self._rto_s = rto_s
        self._rto_max_s = rto_max_s
        self._window = window
        self._cap = payload_cap
        self.control: deque[tuple[FrameType, bytes, float]] = deque()
        self.snapshot: SnapshotPush | None = None
        self.queue: deque[tuple[bytes, float]] = deque()  # (encoded op, issued at)
        self.hold_queue = False
        self.ops_sent = 0
        self.retransmits = 0
        self.resyncs_sent = 0
        self.last_progress = -math.inf  # when the cumulative ack last advanced
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.rto = rto_s
        self.restart()

    def restart(self) -> None:
        """Start the stream again at seq 1 for a new process of the peer: what was in flight,
        control frames and a snapshot push are forgotten (the snapshot the peer gets next
        replaces them). The incremental queue is kept: it is a gap-free suffix of the op log,
        so it stays correct to replay it after that next snapshot."""
        self.next_seq = 1
        self.una = 1  # lowest seq not cumulatively acked
        self.unacked: dict[int, OutFrame] = {}
        self._heap: list[tuple[float, int, int]] = []
        self.control.clear()
        self.snapshot = None

    @property
    def in_flight(self) -> int:
        return self.next_seq - self.una

    @property
    def waiting(self) -> int:
        """Ops not yet framed: queued incremental ops and the rest of a snapshot push."""
        snap = self.snapshot
        rest = len(snap.entries) - snap.index if snap is not None else 0
        return len(self.queue) + rest

    def oldest(self) -> float | None:
        """When the oldest op not yet acknowledged was issued (None when there is none)."""
        times = []
        first = next(iter(self.unacked.values()), None)
        if first is not None:
            times.append(first.born)
        if self.control:
            times.append(self.control[0][2])
        if self.snapshot is not None:
            times.append(self.snapshot.created)
        if self.queue:
            times.append(self.queue[0][1])
        return min(times) if times else None

    # --- sending -------------------------------------------------------------------------

    def fill(self, now: float) -> list[OutFrame]:
        """New frames for the room in the window, in stream order."""
        out: list[OutFrame] = []
        while self.next_seq - self.una < self._window:
            if self.control:
                ftype, payload, born = self.control.popleft()
                out.append(self._new(ftype, payload, 0, born, now))
            elif self.snapshot is not None:
                out.append(self._snapshot_frame(self.snapshot, now))
            elif self.queue and not self.hold_queue:
                out.append(self._queue_frame(now))
            else:
                break
        return out

    def _new(self, ftype: FrameType, payload: bytes, ops: int, born: float, now: float) -> OutFrame:
        seq = self.next_seq
        self.next_seq = seq + 1
        frame = OutFrame(seq, ftype, payload, ops, born, self.rto, now)
        self.unacked[seq] = frame
        heapq.heappush(self._heap, (now + self.rto, seq, 0))
        self.ops_sent += ops
        return frame

    def _queue_frame(self, now: float) -> OutFrame:
        queue, cap = self.queue, self._cap
        born = queue[0][1]
        parts: list[bytes] = []
        size = 0
        while queue:
            op = queue[0][0]
            size += len(op)
            if size > cap:
                break
            parts.append(op)
            queue.popleft()
        return self._new(FrameType.ENTRIES, b"".join(parts), len(parts), born, now)

    def _snapshot_frame(self, snap: SnapshotPush, now: float) -> OutFrame:
        if not snap.begun:
            snap.begun = True
            payload = _BEGIN.pack(snap.resync_id)
            return self._new(FrameType.RESYNC_BEGIN, payload, 0, snap.created, now)
        entries, i, cap = snap.entries, snap.index, self._cap
        if i >= len(entries):
            self.snapshot = None
            self.resyncs_sent += 1
            payload = _END.pack(snap.resync_id, len(entries))
            return self._new(FrameType.RESYNC_END, payload, 0, snap.created, now)
        parts: list[bytes] = []
        size, end = 0, len(entries)
        while i < end:
            key, value = entries[i]
            op = encode_upsert(key, value)
            size += len(op)
            if size > cap:
                break
            parts.append(op)
            i += 1
        snap.index = i
        return self._new(FrameType.ENTRIES, b"".join(parts), len(parts), snap.created, now)

    # --- acknowledgements ----------------------------------------------------------------

    def acknowledge(self, ack_wire: int, now: float | None = None) -> int:
        """Apply a cumulative ack (wire form); returns the unbounded seq it stands for. With
        ``now``, the newest frame it frees that was sent once gives a round-trip sample."""
        cum = seq_from_wire(ack_wire, self.una - 1)
        if self.una <= cum < self.next_seq:
            unacked = self.unacked
            newest: OutFrame | None = None
            for seq in range(self.una, cum + 1):
                frame = unacked.pop(seq, None)
                if frame is not None and not frame.retried:
                    newest = frame
            self.una = cum + 1
            if now is not None:
                self.last_progress = now
                if newest is not None:
                    self._sample(now - newest.sent)
        return cum

    def _sample(self, rtt: float) -> None:
        """RFC 6298 section 2: smoothed round trip, its variation, and the timeout."""
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        self.rto = min(max(self.srtt + 4 * self.rttvar, self._rto_s), self._rto_max_s)

    def selective_ack(self, cum: int, bitmap: bytes) -> None:
        """Free frames the peer holds out of order: bit i stands for seq cum + 2 + i."""
        base = cum + 2
        unacked = self.unacked
        for index, byte in enumerate(bitmap):
            if not byte:
                continue
            for bit in range(8):
                if byte & (0x80 >> bit):
                    unacked.pop(base + index * 8 + bit, None)

    # --- retransmission ------------------------------------------------------------------

    def due(self, now: float) -> list[OutFrame]:
        """The frames whose retransmission timeout passed, rearmed with a doubled timeout."""
        heap, unacked, out = self._heap, self.unacked, []
        while heap and heap[0][0] <= now:
            _, seq, gen = heapq.heappop(heap)
            frame = unacked.get(seq)
            if frame is None or frame.gen != gen:
                continue
            hold = self.last_progress + self.rto
            if hold > now:  # the peer is acking: restart this frame's timer, resend nothing
                frame.gen += 1
                heapq.heappush(heap, (hold, seq, frame.gen))
                continue
            frame.rto = min(frame.rto * 2, self._rto_max_s)
            frame.gen += 1
            frame.retried = True
            heapq.heappush(heap, (now + frame.rto, seq, frame.gen))
            out.append(frame)
        self.retransmits += len(out)
        return out

    def next_due(self) -> float:
        heap, unacked = self._heap, self.unacked
        while heap:
            _, seq, gen = heap[0]
            frame = unacked.get(seq)
            if frame is not None and frame.gen == gen:
                return heap[0][0]
            heapq.heappop(heap)
        return math.inf

    def rearm(self, now: float) -> None:
        """Make every unacked frame due at ``now`` with the first timeout again: the peer just
        came up, so the backoff earned while nobody listened says nothing about the path."""
        self._heap = []
        for seq, frame in self.unacked.items():
            frame.gen += 1
            frame.retried = True
            frame.rto = self.rto
            self._heap.append((now, seq, frame.gen))
        heapq.heapify(self._heap)
