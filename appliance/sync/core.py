"""The conntrack-sync protocol core: replicate a key/value table to peers over UDP, sans-IO.

Each node streams its local changes (`upsert`, `delete`) to every configured peer over an
authenticated, sequenced, acknowledged channel (`frames`, `sendstream`, `receivestream`) and
applies what each peer streams to it into a per-peer *remote table*. The shell moves datagrams
(`receive_datagram`, `datagrams_to_send`), sleeps until `get_timer()` and calls `handle_timer`,
and acts on `next_event()`. Times are the shell's clock in seconds; nothing here does I/O.

After every call into the core the shell drains `datagrams_to_send()` and `next_event()`:
new reliable frames are built there, so ops issued in one go share frames.

Peers and epochs: a peer is its configured address. Its epoch (the sender's start time) names
one process; frames of an older epoch are rejected, a newer epoch means the peer restarted:
both directions of the channel restart at seq 1, the peer is asked for a resync (so what it no
longer has is reported here as `Stale`) and the shell is asked for a snapshot to push to it.
The ``ack epoch`` of a frame names the receiver process the sender is talking to; a reliable
frame meant for an earlier process of this node is ignored, so a restart never mixes two
streams.

A peer back after being down is asked for a resync as well (its `ResyncDone` tells the shell
this node has caught up again).

Bulk resync: the peer's RESYNC_REQUEST becomes `SnapshotWanted`; `provide_snapshot` queues
BEGIN, the entries, END. The receiver notes the keys it holds from the peer at BEGIN and
reports, at END, those the snapshot did not carry (`Stale`). The shell answers each SnapshotWanted
exactly once with a table read after it (see `provide_snapshot` for why that is enough).

Overflow: when more than ``queue_limit`` incremental ops wait for one peer, they are dropped,
counted and replaced by a snapshot push — never lost silently.
"""

from __future__ import annotations

import math
import types
from collections import Counter, deque
from collections.abc import Mapping, Sequence

import attrs

from appliance.ha.wire import AuthKeys

from .channel import IncomingResync, PeerChannel, PeerState
from .events import (
    Apply,
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
)
from .frames import (
    MAX_U64,
    OVERHEAD,
    VERSION,
    Ack,
    Entries,
    Frame,
    FrameError,
    FrameType,
    Header,
    Hello,
    RejectReason,
    ResyncBegin,
    ResyncEnd,
    decode_frame,
    encode_body,
    encode_delete,
    encode_frame,
    encode_upsert,
    seq_to_wire,
)
from .sendstream import SendStream, SnapshotPush

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
    "Rejected",
    "ResyncDone",
    "SnapshotWanted",
    "Stale",
    "SyncCore",
]

#: capability bits announced in HELLO (none defined yet)
CAPABILITIES = 0
#: smallest useful datagram: the overhead and one op with a small key and value
MIN_DATAGRAM = OVERHEAD + 64


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, not {value}")


@attrs.frozen
class CoreConfig:
    node_id: int = attrs.field(
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(255))
    )
    #: strictly greater at every process start (the shell passes time.time_ns())
    epoch: int = attrs.field(
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(MAX_U64))
    )
    #: ``current`` signs; ``previous`` is still accepted (rotation)
    keys: AuthKeys
    keepalive_s: float = attrs.field(default=0.5, validator=_positive)
    dead_after_s: float = attrs.field(default=2.0, validator=_positive)
    rto_s: float = attrs.field(default=0.2, validator=_positive)
    rto_max_s: float = attrs.field(default=1.0, validator=_positive)
    #: reliable frames in flight per peer (also the receive buffer: both sides should agree)
    window: int = attrs.field(
        default=512,
        validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(2**20)),
    )
    #: incremental ops waiting beyond the window per peer; more is an overflow
    queue_limit: int = attrs.field(default=200_000, validator=attrs.validators.ge(1))
    #: whole frame, header and MAC included
    max_datagram: int = attrs.field(
        default=1400,
        validator=attrs.validators.and_(
            attrs.validators.ge(MIN_DATAGRAM), attrs.validators.le(65507)
        ),
    )
    join_timeout_s: float = attrs.field(default=5.0, validator=_positive)


class _Join:
    """Progress of `SyncCore.join`: peers still expected to resync to this node."""

    __slots__ = ("deadline", "missed", "pending", "resynced")

    def __init__(self, pending: set[PeerAddr], missed: set[PeerAddr], deadline: float) -> None:
        self.pending = pending
        self.missed = missed
        self.resynced: set[PeerAddr] = set()
        self.deadline = deadline


class SyncCore:
    """One node's end of conntrack sync with all its peers (see the module docstring)."""

    def __init__(self, config: CoreConfig, peers: Sequence[PeerAddr], now: float) -> None:
        self._config = config
        self._keys = config.keys
        self._cap = config.max_datagram - OVERHEAD
        self._channels: dict[PeerAddr, PeerChannel] = {}
        for peer in peers:
            send = SendStream(
                rto_s=config.rto_s,
                rto_max_s=config.rto_max_s,
                window=config.window,
                payload_cap=self._cap,
            )
            ch = PeerChannel(peer, send, config.window, now)
            ch.last_sent = now - config.keepalive_s  # the first HELLO is due at once
            self._channels[peer] = ch
        self._peers = tuple(self._channels.values())
        self._events: deque[Event] = deque()
        self._outbox: list[tuple[PeerAddr, bytes]] = []
        self._counter = 0
        self._resync_id = 0
        self._now = now
        self._join: _Join | None = None
        self._join_done = False
        self._unknown_rejected: Counter[str] = Counter()

    # --- local changes -------------------------------------------------------------------

    def upsert(self, key: bytes, value: bytes, now: float) -> None:
        """Replicate ``key`` = ``value`` to every peer. Raises ValueError if it cannot fit."""
        self._enqueue(encode_upsert(key, value), now)

    def delete(self, key: bytes, now: float) -> None:
        self._enqueue(encode_delete(key), now)

    def _enqueue(self, op: bytes, now: float) -> None:
        if len(op) > self._cap:
            raise ValueError(f"op of {len(op)} bytes exceeds {self._cap} (max_datagram)")
        self._now = now
        item = (op, now)
        limit = self._config.queue_limit
        for ch in self._peers:
            if ch.snapshot_deferred:
                continue  # the snapshot asked for when the peer is back covers this op
            queue = ch.send.queue
            queue.append(item)
            if len(queue) > limit:
                self._overflow(ch)

    def _overflow(self, ch: PeerChannel) -> None:
        ch.send.queue.clear()
        ch.overflows += 1
        if ch.snapshot_wanted:
            ch.resnapshot = True  # the awaited snapshot may predate the dropped ops
        else:
            self._want_snapshot(ch)

    # --- snapshots -----------------------------------------------------------------------

    def provide_snapshot(
        self, peer: PeerAddr, entries: Sequence[tuple[bytes, bytes]], now: float
    ) -> None:
        """Push ``entries`` (the shell's whole table, read after `SnapshotWanted`) to ``peer``.

        Contract: call it exactly once per `SnapshotWanted`, with a table read after that
        event (any time after: ops issued meanwhile are held back, not sent, until this call).
        Until it is answered no other SnapshotWanted is emitted for that peer and its ops only
        queue (and may overflow). Do not push unsolicited snapshots: call `request_snapshot`
        and answer the event it brings.

        Why it is correct: the snapshot goes into the peer's stream ahead of the incremental
        ops still queued, which are delivered after it. The queue is a gap-free suffix of the
        op log that began no later than the read (ops issued after the request were held), so
        replaying it on top of the snapshot ends on the current values. A push in progress is
        abandoned (the peer restarts its resync at the new BEGIN)."""
        ch = self._channel(peer)
        cap = self._cap
        table = list(entries)
        for key, value in table:
            if len(key) + len(value) + 5 > cap:
                raise ValueError(f"entry of {len(key) + len(value)} bytes exceeds {cap}")
        self._now = now
        self._resync_id = self._resync_id % 0xFFFFFFFF + 1
        ch.send.snapshot = SnapshotPush(self._resync_id, table, now)
        ch.send.hold_queue = False
        ch.snapshot_wanted = ch.snapshot_deferred = False
        if ch.resnapshot:
            # ask again from the next handle_timer, not from inside this call: a shell that
            # is still busy with this answer would take the new request for a duplicate
            ch.resnapshot = False
            self._want_snapshot(ch, ask_now=False)

    def request_snapshot(self, peer: PeerAddr, now: float) -> None:
        """Push the whole table to ``peer`` again (e.g. the shell lost local changes): brings a
        `SnapshotWanted` for it, unless one is already outstanding."""
        self._now = now
        self._want_snapshot(self._channel(peer))

    def _want_snapshot(self, ch: PeerChannel, *, ask_now: bool = True) -> None:
        """Ask the shell for a snapshot for ``ch``: at most one request outstanding per peer,
        made when the peer is up (until then its ops are not even queued)."""
        if ch.snapshot_wanted:
            return
        if ch.state is PeerState.UP:
            ch.snapshot_wanted = True
            ch.send.hold_queue = True  # ops issued from now on go after the snapshot
            if ask_now:
                ch.snapshot_ask_at = math.inf
                self._events.append(SnapshotWanted(ch.addr))
            else:
                ch.snapshot_ask_at = self._now  # from the next handle_timer
        else:
            ch.snapshot_deferred = True
            ch.send.queue.clear()

    # --- join ----------------------------------------------------------------------------

    def join(self, now: float) -> None:
        """Ask every peer for a bulk resync; `JoinDone` follows once each finished or missed."""
        if self._join is not None:
            raise RuntimeError("join() was already called")
        self._now = now
        pending: set[PeerAddr] = set()
        missed: set[PeerAddr] = set()
        for ch in self._peers:
            ch.send.control.append((FrameType.RESYNC_REQUEST, b"", now))
            (missed if ch.state is PeerState.DOWN else pending).add(ch.addr)
        self._join = _Join(pending, missed, now + self._config.join_timeout_s)
        self._check_join()

    def _join_settle(self, peer: PeerAddr, resynced: bool) -> None:
        join = self._join
        if join is None or self._join_done or peer not in join.pending:
            return
        join.pending.discard(peer)
        (join.resynced if resynced else join.missed).add(peer)
        self._check_join()

    def _check_join(self) -> None:
        join = self._join
        if join is None or self._join_done or join.pending:
            return
        self._join_done = True
        order = [ch.addr for ch in self._peers]
        self._events.append(
            JoinDone(
                tuple(p for p in order if p in join.resynced),
                tuple(p for p in order if p in join.missed),
            )
        )

    # --- receiving -----------------------------------------------------------------------

    def receive_datagram(self, source: PeerAddr, data: bytes, now: float) -> None:
        """Take one datagram from ``source``; a rejected one changes nothing but counters."""
        self._now = now
        ch = self._channels.get(source)
        if ch is None:
            self._unknown_rejected[RejectReason.UNKNOWN_PEER] += 1
            self._events.append(Rejected(source, RejectReason.UNKNOWN_PEER))
            return
        try:
            frame = decode_frame(data, self._keys)
        except FrameError as exc:
            self._reject(ch, exc.reason)
            return
        header = frame.header
        restarted = False
        if header.node_id == self._config.node_id:
            self._reject(ch, RejectReason.NODE_ID)  # our own frames looped back
            return
        if ch.epoch is not None:
            if header.epoch < ch.epoch:
                self._reject(ch, RejectReason.STALE_EPOCH)
                return
            if header.epoch == ch.epoch:
                if header.node_id != ch.node_id:
                    self._reject(ch, RejectReason.NODE_ID)
                    return
                if not ch.replay.fresh(header.counter):
                    self._reject(ch, RejectReason.REPLAY)
                    return
            else:
                restarted = True
        # authentic, current and new: from here on the frame counts
        if restarted:
            ch.restart(header.epoch, header.node_id)
            self._events.append(PeerRestarted(ch.addr, header.node_id))
            ch.send.control.append((FrameType.RESYNC_REQUEST, b"", now))
        elif ch.epoch is None:
            ch.epoch, ch.node_id = header.epoch, header.node_id
        # back after being down (not a first contact, not a restart: that asks already): what
        # changed there meanwhile is learnt by a resync, which also tells the shell it is done
        returning = ch.state is PeerState.DOWN and ch.last_heard is not None and not restarted
        ch.replay.accept(header.counter)
        ch.last_heard = now
        ch.frames_received += 1
        if ch.state is not PeerState.UP:
            self._peer_up(ch, now)
        if returning:
            ch.send.control.append((FrameType.RESYNC_REQUEST, b"", now))
        if restarted:
            self._want_snapshot(ch)
        body = frame.body
        if isinstance(body, Hello):
            ch.capabilities = body.capabilities
        epoch = self._config.epoch
        if header.ack_epoch == epoch:
            cum = ch.send.acknowledge(header.ack, now)
            if isinstance(body, Ack) and body.sack:
                ch.send.selective_ack(cum, body.sack)
        if header.seq:
            ch.need_ack = True
            if header.ack_epoch in (0, epoch):  # else: a stream to an earlier process of ours
                for ready in ch.recv.accept(frame):
                    self._deliver(ch, ready)

    def _reject(self, ch: PeerChannel, reason: RejectReason) -> None:
        ch.rejected[reason] += 1
        self._events.append(Rejected(ch.addr, reason))

    def _peer_up(self, ch: PeerChannel, now: float) -> None:
        ch.state, ch.since = PeerState.UP, now
        ch.send.rearm(now)
        assert ch.node_id is not None
        self._events.append(PeerUp(ch.addr, ch.node_id))
        if ch.snapshot_deferred:
            ch.snapshot_deferred = False
            self._want_snapshot(ch)

    def _deliver(self, ch: PeerChannel, frame: Frame) -> None:
        """Act on one reliable frame, in the peer's stream order."""
        body = frame.body
        if isinstance(body, Entries):
            ops = body.ops
            remote = ch.remote
            resync = ch.resync
            if resync is None:
                for key, value in ops:
                    if value is None:
                        remote.pop(key, None)
                    else:
                        remote[key] = value
            else:
                stale = resync.stale
                for key, value in ops:
                    stale.discard(key)
                    if value is None:
                        remote.pop(key, None)
                    else:
                        remote[key] = value
                        resync.count += 1
            ch.ops_received += len(ops)
            self._events.append(Apply(ch.addr, ops))
        elif frame.header.type is FrameType.RESYNC_REQUEST:
            snap = ch.send.snapshot
            if not (ch.snapshot_wanted or (snap is not None and not snap.begun)):
                self._want_snapshot(ch)
        elif isinstance(body, ResyncBegin):
            ch.resync = IncomingResync(body.resync_id, set(ch.remote))
        elif isinstance(body, ResyncEnd):
            resync = ch.resync
            if resync is None or resync.resync_id != body.resync_id:
                return
            ch.resync = None
            remote = ch.remote
            gone = tuple(key for key in resync.stale if key in remote)
            for key in gone:
                del remote[key]
            if gone:
                self._events.append(Stale(ch.addr, gone))
            ch.resyncs_received += 1
            self._events.append(ResyncDone(ch.addr, resync.count))
            self._join_settle(ch.addr, True)

    # --- sending -------------------------------------------------------------------------

    def _emit(self, ch: PeerChannel, ftype: FrameType, seq: int, payload: bytes) -> None:
        """Sign and queue one frame to ``ch``, with the current ack piggybacked."""
        self._counter += 1
        key = self._keys.current
        if ch.epoch is None:
            ack = ack_epoch = 0
        else:
            ack, ack_epoch = ch.recv.ack_wire, ch.epoch
        config = self._config
        header = Header(
            ftype, key.id, config.node_id, config.epoch, self._counter, seq, ack, ack_epoch
        )
        self._outbox.append((ch.addr, encode_frame(header, payload, key)))
        ch.frames_sent += 1
        ch.last_sent = self._now
        if not ch.recv.held:
            ch.need_ack = False  # the cumulative ack went with it and there is nothing to sack

    def datagrams_to_send(self) -> list[tuple[PeerAddr, bytes]]:
        """Every datagram due now (drains): retransmissions, new frames, pure acks."""
        now = self._now
        for ch in self._peers:
            if ch.state is not PeerState.DOWN:
                for frame in ch.send.fill(now):
                    self._emit(ch, frame.type, seq_to_wire(frame.seq), frame.payload)
            if ch.need_ack:
                sack = ch.recv.sack(self._cap)
                self._emit(ch, FrameType.ACK, 0, sack)
                ch.need_ack = False
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # --- time ----------------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Liveness, retransmissions, keepalives and the join deadline, as of ``now``."""
        self._now = now
        config = self._config
        for ch in self._peers:
            if ch.state is PeerState.UP:
                assert ch.last_heard is not None
                if now >= ch.last_heard + config.dead_after_s:
                    ch.state, ch.since = PeerState.DOWN, now
                    self._events.append(PeerDown(ch.addr))
                    self._join_settle(ch.addr, False)
            elif ch.state is PeerState.CONNECTING and now >= ch.since + config.dead_after_s:
                ch.state, ch.since = PeerState.DOWN, now
                self._join_settle(ch.addr, False)
            if ch.state is not PeerState.DOWN:
                for frame in ch.send.due(now):
                    self._emit(ch, frame.type, seq_to_wire(frame.seq), frame.payload)
            if ch.snapshot_wanted and now >= ch.snapshot_ask_at:
                ch.snapshot_ask_at = math.inf
                self._events.append(SnapshotWanted(ch.addr))
            if now >= ch.last_sent + config.keepalive_s:  # as get_timer computes it
                if ch.state is PeerState.UP:
                    self._emit(ch, FrameType.KEEPALIVE, 0, b"")
                else:
                    hello = Hello(config.node_id, VERSION, CAPABILITIES)
                    self._emit(ch, FrameType.HELLO, 0, encode_body(hello))
        join = self._join
        if join is not None and not self._join_done and now >= join.deadline:
            join.missed |= join.pending
            join.pending.clear()
            self._check_join()

    def get_timer(self) -> float:
        """The next deadline for `handle_timer` (absolute); math.inf if none."""
        config = self._config
        deadline = math.inf
        join = self._join
        if join is not None and not self._join_done:
            deadline = join.deadline
        for ch in self._peers:
            deadline = min(deadline, ch.last_sent + config.keepalive_s)
            if ch.snapshot_wanted:
                deadline = min(deadline, ch.snapshot_ask_at)
            if ch.state is PeerState.DOWN:
                continue
            if ch.state is PeerState.UP:
                assert ch.last_heard is not None
                deadline = min(deadline, ch.last_heard + config.dead_after_s)
            else:
                deadline = min(deadline, ch.since + config.dead_after_s)
            deadline = min(deadline, ch.send.next_due())
        return deadline

    # --- keys and inspection -------------------------------------------------------------

    def set_keys(self, keys: AuthKeys) -> None:
        """Sign with ``keys.current`` from now on and accept ``keys.previous`` (rotation)."""
        self._keys = keys

    def status(self, now: float) -> tuple[PeerStatus, ...]:
        out = []
        for ch in self._peers:
            send = ch.send
            oldest = send.oldest()
            out.append(
                PeerStatus(
                    peer=ch.addr,
                    node_id=ch.node_id,
                    state=str(ch.state),
                    epoch=ch.epoch,
                    frames_sent=ch.frames_sent,
                    frames_received=ch.frames_received,
                    ops_sent=send.ops_sent,
                    ops_received=ch.ops_received,
                    retransmits=send.retransmits,
                    queue=send.waiting,
                    in_flight=send.in_flight,
                    lag_s=max(0.0, now - oldest) if oldest is not None else 0.0,
                    resyncs_sent=send.resyncs_sent,
                    resyncs_received=ch.resyncs_received,
                    overflows=ch.overflows,
                    last_heard_s=None if ch.last_heard is None else now - ch.last_heard,
                    rejected=types.MappingProxyType({str(k): v for k, v in ch.rejected.items()}),
                )
            )
        return tuple(out)

    def rejected_unknown(self) -> Mapping[str, int]:
        """Datagrams rejected from sources that are not configured peers, by reason."""
        return types.MappingProxyType({str(k): v for k, v in self._unknown_rejected.items()})

    def remote_table(self, peer: PeerAddr) -> Mapping[bytes, bytes]:
        """What this node holds from ``peer`` (a read-only live view)."""
        return types.MappingProxyType(self._channel(peer).remote)

    def _channel(self, peer: PeerAddr) -> PeerChannel:
        try:
            return self._channels[peer]
        except KeyError:
            raise ValueError(f"{peer} is not a configured peer") from None
