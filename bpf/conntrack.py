"""Access to the dataplane's connection table: listing, sync inserts, expiry, events.

Each connection has two entries in ``conntrack``: the forward one, keyed by the client's
packet (client -> VIP), and the reply one (flag `CT_REPLY`), keyed by the endpoint's answer as
it arrives after translation. An entry rewrites a matching packet's addresses and ports to its
``nat_*`` fields, so the reply entry is derived from the forward one (`reply_of`):

    forward  key (c, v, cp, vp)   nat (s, e, sp, ep)     client c:cp -> VIP v:vp
    reply    key (e, s, ep, sp)   nat (v, c, vp, cp)     endpoint e:ep -> s:sp

A direct-server-return connection (`CT_DSR`) has the forward entry only.

Open-connection accounting (``ep_active``, least-connections): a forward entry counts while
its state is not `CtState.CLOSED`; whoever removes a counted entry or closes it decrements.

Times are CLOCK_MONOTONIC nanoseconds (`time.monotonic_ns`, the base of bpf_ktime_get_ns).
All calls are blocking map system calls.
"""

from __future__ import annotations

import ctypes
import enum
import ipaddress
import struct
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import attrs
import numpy as np

from .layout import (
    CT_DSR,
    CT_REMOTE,
    CT_REPLY,
    CT_TIMEOUT_S,
    EV_CLOSED,
    EV_ESTABLISHED,
    EV_NEW,
    MAX_ENDPOINTS,
    CtEntry,
    CtEvent,
    CtKey,
    CtState,
    be16,
    be32,
    from_be16,
    from_be32,
)
from .maps import Maps
from .records import KEY_DTYPE, Records, of_pairs, table

__all__ = [
    "ConnEvent",
    "Conntrack",
    "CtFilter",
    "CtRecord",
    "CtTuple",
    "EventType",
    "counted",
    "expired",
    "reply_of",
]

#: Idle timeout of an entry whose state is unknown to this layout.
DEFAULT_TIMEOUT_S = max(CT_TIMEOUT_S.values())


class EventType(enum.IntEnum):
    NEW = EV_NEW
    ESTABLISHED = EV_ESTABLISHED
    CLOSED = EV_CLOSED


@attrs.frozen
class CtTuple:
    """A 5-tuple in host terms (addresses, host-order ports, IP protocol)."""

    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    sport: int
    dport: int
    proto: int

    def to_key(self) -> CtKey:
        return CtKey(
            src=be32(self.src),
            dst=be32(self.dst),
            sport=be16(self.sport),
            dport=be16(self.dport),
            proto=self.proto,
        )

    @classmethod
    def from_key(cls, key: CtKey) -> CtTuple:
        return cls(
            from_be32(key.src),
            from_be32(key.dst),
            from_be16(key.sport),
            from_be16(key.dport),
            int(key.proto),
        )

    @classmethod
    def nat_of(cls, key: CtKey, entry: CtEntry) -> CtTuple:
        """What the entry rewrites a packet of ``key`` to."""
        return cls(
            from_be32(entry.nat_src),
            from_be32(entry.nat_dst),
            from_be16(entry.nat_sport),
            from_be16(entry.nat_dport),
            int(key.proto),
        )


def _state(value: int) -> CtState | int:
    try:
        return CtState(value)
    except ValueError:
        return value


@attrs.frozen
class CtRecord:
    """One connection (its forward entry), for listing."""

    key: CtTuple
    nat: CtTuple
    svc_id: int
    ep_index: int
    state: CtState | int
    flags: int
    age_s: float
    idle_s: float
    packets: int
    bytes: int

    @property
    def remote(self) -> bool:
        return bool(self.flags & CT_REMOTE)


@attrs.frozen
class CtFilter:
    """Which connections `Conntrack.entries` lists; None fields match anything."""

    svc_id: int | None = None
    client: ipaddress.IPv4Address | None = None
    vip: ipaddress.IPv4Address | None = None
    endpoint: ipaddress.IPv4Address | None = None
    state: CtState | None = None
    remote: bool | None = None

    def matches(self, record: CtRecord) -> bool:
        return (
            (self.svc_id is None or record.svc_id == self.svc_id)
            and (self.client is None or record.key.src == self.client)
            and (self.vip is None or record.key.dst == self.vip)
            and (self.endpoint is None or record.nat.dst == self.endpoint)
            and (self.state is None or record.state == self.state)
            and (self.remote is None or record.remote == self.remote)
        )


#: the reply rule, one field at a time: the reply direction's key is the translated tuple
#: reversed (its fields taken from the forward entry's), and the reply entry translates back to
#: the original tuple reversed (its translation taken from the forward key's fields)
_REPLY_KEY = (
    ("src", "nat_dst"),
    ("dst", "nat_src"),
    ("sport", "nat_dport"),
    ("dport", "nat_sport"),
)
_REPLY_NAT = (
    ("nat_src", "dst"),
    ("nat_dst", "src"),
    ("nat_sport", "dport"),
    ("nat_dport", "sport"),
)


def reply_of(key: CtKey, entry: CtEntry) -> tuple[CtKey, CtEntry]:
    """The reply-direction key and entry of a forward (key, entry)."""
    reply_key = CtKey(proto=key.proto)
    reply = CtEntry.from_buffer_copy(entry)
    for field, source in _REPLY_KEY:
        setattr(reply_key, field, getattr(entry, source))
    for field, source in _REPLY_NAT:
        setattr(reply, field, getattr(key, source))
    reply.flags = entry.flags | CT_REPLY
    return reply_key, reply


def replies_of(keys: Records, entries: Records) -> tuple[Records, Records]:
    """`reply_of` for arrays of forward keys and entries."""
    reply_keys = np.zeros(len(keys), KEY_DTYPE)
    reply_keys["proto"] = keys["proto"]
    replies = entries.copy()
    for field, source in _REPLY_KEY:
        reply_keys[field] = entries[source]
    for field, source in _REPLY_NAT:
        replies[field] = keys[source]
    replies["flags"] |= CT_REPLY
    return reply_keys, replies


def timeout_ns(entry: CtEntry) -> int:
    return _timeout_of_state(int(entry.state))


def _timeout_of_state(value: int) -> int:
    state = _state(value)
    seconds = CT_TIMEOUT_S[state] if isinstance(state, CtState) else DEFAULT_TIMEOUT_S
    return seconds * 1_000_000_000


#: where a raw entry keeps what the collector looks at first (no ctypes object per entry)
_STATE_AT, _FLAGS_AT, _LAST_AT = CtEntry.state.offset, CtEntry.flags.offset, CtEntry.last_ns.offset
_TIMEOUT_TABLE = np.array([_timeout_of_state(value) for value in range(256)], np.int64)
_SLOT = struct.Struct("=IH")  # a raw entry's svc_id, ep_index
_SLOT_AT = CtEntry.svc_id.offset


def expired(entry: CtEntry, now_ns: int) -> bool:
    """Idle for longer than its state's timeout."""
    return now_ns - int(entry.last_ns) > timeout_ns(entry)


def _add_slot(deltas: dict[tuple[int, int], int], slot: tuple[int, int], delta: int) -> None:
    deltas[slot] = deltas.get(slot, 0) + delta


def _counted_raw(entry: bytes) -> bool:
    """`counted` on a raw entry."""
    return not entry[_FLAGS_AT] & CT_REPLY and entry[_STATE_AT] != CtState.CLOSED


def _last_of_each(keys: Records, entries: Records) -> tuple[Records, Records]:
    """The records with each key once, at its last occurrence, in their order."""
    if len(keys) < 2:
        return keys, entries
    flat = keys.view(np.dtype((np.void, KEY_DTYPE.itemsize)))
    _, first_from_end = np.unique(flat[::-1], return_index=True)
    if len(first_from_end) == len(keys):
        return keys, entries
    last = np.sort(len(keys) - 1 - first_from_end)
    return keys[last], entries[last]


def _active_deltas(
    forward: Records, write: np.ndarray[Any, np.dtype[np.bool_]], replaced: list[tuple[int, bytes]]
) -> dict[tuple[int, int], int]:
    """The ``ep_active`` changes of writing ``forward[write]``, where ``replaced`` are the
    written-over connections (index, old raw entry): a new connection counts when not closed;
    a replaced one moves its count when its endpoint or its closed state changes."""
    deltas: dict[tuple[int, int], int] = {}
    fresh = write.copy()
    for index, _ in replaced:
        fresh[index] = False
    counts = fresh & (forward["state"] != CtState.CLOSED)
    slots = (forward["svc_id"].astype(np.uint64) << np.uint64(16)) | forward["ep_index"]
    for slot, count in zip(*np.unique(slots[counts], return_counts=True), strict=True):
        _add_slot(deltas, (int(slot) >> 16, int(slot) & 0xFFFF), int(count))
    for index, old in replaced:
        record = forward[index]
        slot = (int(record["svc_id"]), int(record["ep_index"]))
        before = _counted_raw(old)
        was = _SLOT.unpack_from(old, _SLOT_AT)
        if before and was != slot:
            _add_slot(deltas, was, -1)
            before = False
        now_counted = int(record["state"]) != CtState.CLOSED
        if now_counted and not before:
            _add_slot(deltas, slot, +1)
        elif before and not now_counted:
            _add_slot(deltas, slot, -1)
    return deltas


def counted(entry: CtEntry) -> bool:
    """Whether the entry holds one of its endpoint's open connections (``ep_active``)."""
    return not entry.flags & CT_REPLY and entry.state != CtState.CLOSED


def _record(key: CtKey, entry: CtEntry, now_ns: int) -> CtRecord:
    return CtRecord(
        key=CtTuple.from_key(key),
        nat=CtTuple.nat_of(key, entry),
        svc_id=int(entry.svc_id),
        ep_index=int(entry.ep_index),
        state=_state(int(entry.state)),
        flags=int(entry.flags),
        age_s=max(0, now_ns - int(entry.created_ns)) / 1e9,
        idle_s=max(0, now_ns - int(entry.last_ns)) / 1e9,
        packets=int(entry.packets),
        bytes=int(entry.bytes),
    )


@attrs.frozen
class ConnEvent:
    """A connection event from the ring buffer (copies of the forward key and entry)."""

    type: EventType | int
    key: CtKey
    entry: CtEntry

    @classmethod
    def decode(cls, data: bytes) -> ConnEvent:
        raw = CtEvent.from_buffer_copy(data[: ctypes.sizeof(CtEvent)])
        try:
            kind: EventType | int = EventType(raw.type)
        except ValueError:
            kind = int(raw.type)
        key = CtKey.from_buffer_copy(bytes(raw.key))
        return cls(kind, key, CtEntry.from_buffer_copy(bytes(raw.entry)))

    def record(self, now_ns: int | None = None) -> CtRecord:
        return _record(self.key, self.entry, time.monotonic_ns() if now_ns is None else now_ns)


class Conntrack:
    """The connection table of a loaded (or opened) dataplane. ``events`` is the loaded
    `bpf.loader.Dataplane` when events are wanted (the ring buffer is not pinned)."""

    def __init__(self, maps: Maps, events: Any = None) -> None:
        self.maps = maps
        self._events = events
        #: live connections counted by the last `collect_expired` (None before the first)
        self.live: int | None = None

    # reading -----------------------------------------------------------------------------

    def _forward(self) -> list[tuple[CtKey, CtEntry]]:
        return [(k, v) for k, v in self.maps.conntrack.batch_items() if not v.flags & CT_REPLY]

    def forward_entries(self) -> list[tuple[CtKey, CtEntry]]:
        """Every connection's forward entry (key, entry), in map order."""
        return self._forward()

    def forward_records(self) -> tuple[Records, Records]:
        """`forward_entries` as record arrays (`bpf.records`; a bulk resync reads the whole
        table)."""
        keys, entries = self._table()
        forward = (entries["flags"] & CT_REPLY) == 0
        return keys[forward], entries[forward]

    def _table(self) -> tuple[Records, Records]:
        return table(self.maps.conntrack.batch_blobs())

    def count(self) -> int:
        """Connections (forward entries)."""
        _, entries = self._table()
        return int(np.count_nonzero((entries["flags"] & CT_REPLY) == 0))

    def entries(
        self,
        limit: int = 100,
        offset: int = 0,
        filter: CtFilter | None = None,
        now_ns: int | None = None,
    ) -> list[CtRecord]:
        """Connections matching ``filter``, oldest first, ``limit`` from ``offset``."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        records = [_record(k, v, now) for k, v in self._forward()]
        if filter is not None:
            records = [r for r in records if filter.matches(r)]
        records.sort(key=lambda r: (-r.age_s, str(r.key)))
        return records[offset : offset + limit]

    def lookup(self, key: CtKey) -> CtEntry | None:
        return self.maps.conntrack.lookup(key)

    # writing -----------------------------------------------------------------------------

    def insert(self, key: CtKey, entry: CtEntry, now_ns: int | None = None) -> None:
        """Write a connection learnt from a peer (conntrack sync): the forward entry flagged
        `CT_REMOTE` and its reply entry. ``last_ns`` becomes now (our clock, not the peer's),
        ``created_ns`` too when unset. Replacing a connection keeps ``ep_active`` right."""
        self.insert_many([(key, entry)], now_ns)

    def insert_many(
        self,
        items: Sequence[tuple[CtKey, CtEntry]],
        now_ns: int | None = None,
        *,
        keep_local: bool = False,
    ) -> tuple[int, int]:
        """`insert` for many connections; see `insert_records`."""
        return self.insert_records(*of_pairs(items), now_ns, keep_local=keep_local)

    def insert_records(
        self,
        keys: Records,
        entries: Records,
        now_ns: int | None = None,
        *,
        keep_local: bool = False,
    ) -> tuple[int, int]:
        """`insert` for many connections given as record arrays (`bpf.records`), written
        with batched map updates and no Python object per connection (a bulk resync brings
        ~100,000); a key given twice is written with its last entry. ``keep_local``: a
        connection this node has as its own (not learnt) is left alone. Returns (written,
        kept)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        keys, entries = _last_of_each(keys, entries)
        table = self.maps.conntrack
        write = np.ones(len(keys), dtype=bool)
        replaced: list[tuple[int, bytes]] = []  # (index, old entry) of connections present
        buffer = ctypes.create_string_buffer(table.value_size)
        raw_keys, size = keys.tobytes(), KEY_DTYPE.itemsize
        lookup = table.lookup_raw
        for index in range(len(keys)):
            old = lookup(raw_keys[index * size : (index + 1) * size], buffer)
            if old is None:
                continue
            if keep_local and not old[_FLAGS_AT] & CT_REMOTE:
                write[index] = False
            else:
                replaced.append((index, old))
        forward = entries.copy()
        forward["flags"] = (forward["flags"] | CT_REMOTE) & (0xFF ^ CT_REPLY)
        created = forward["created_ns"]
        created[(created == 0) | (created > now)] = now
        forward["last_ns"] = now
        deltas = _active_deltas(forward, write, replaced)
        keys, forward = keys[write], forward[write]
        direct = (forward["flags"] & CT_DSR) == 0
        reply_keys, replies = replies_of(keys[direct], forward[direct])
        table.update_batch(
            np.concatenate([reply_keys, keys]).tobytes(),
            np.concatenate([replies, forward]).tobytes(),
        )
        for (svc_id, ep_index), delta in deltas.items():
            if delta:
                self._add_active_index(svc_id, ep_index, delta)
        return len(keys), int(np.count_nonzero(~write))

    def delete(self, key: CtKey) -> bool:
        """Remove a connection (both entries) by its forward key; False if it was absent."""
        entry = self.maps.conntrack.lookup(key)
        if entry is None or entry.flags & CT_REPLY:
            return False
        self._remove(key, entry)
        return True

    def _remove(self, key: CtKey, entry: CtEntry) -> None:
        self.maps.conntrack.delete(key)
        if not entry.flags & CT_DSR:
            self.maps.conntrack.delete(reply_of(key, entry)[0])
        if counted(entry):
            self._add_active(entry, -1)

    def _add_active(self, entry: CtEntry, delta: int) -> None:
        self._add_active_index(int(entry.svc_id), int(entry.ep_index), delta)

    def _add_active_index(self, svc_id: int, ep_index: int, delta: int) -> None:
        if ep_index >= MAX_ENDPOINTS:
            return
        index = ctypes.c_uint32(svc_id * MAX_ENDPOINTS + ep_index)
        current = self.maps.ep_active.lookup(index)
        if current is None:
            return
        # read-modify-write: the program's atomic adds in between are lost, but only those of
        # the same endpoint in the same instant; the counter is advisory (least-connections)
        self.maps.ep_active.update(index, ctypes.c_int64(max(0, current.value + delta)))

    def collect_expired(
        self, now_ns: int | None = None, lock: AbstractContextManager[object] | None = None
    ) -> int:
        """Delete connections idle beyond their state's timeout in both directions (both
        entries; a reply entry whose forward entry is gone goes too). Returns the connections
        removed; the connections left are counted on the way (`live`), so a status need not
        scan the table again. ``lock`` is held only while an expired connection is looked at
        again and removed, not during the scan of the whole table (a scan of a full table
        takes a second or more in Python, and writers such as conntrack sync must not wait
        that long)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        guard = lock if lock is not None else nullcontext()
        # a full table is ~250,000 entries: decide on the arrays, build objects only for the
        # expired ones (a walk in Python would hold the GIL the event loop needs)
        keys, entries = self._table()
        idle = now - entries["last_ns"].astype(np.int64)
        expired = idle > _TIMEOUT_TABLE[entries["state"]]
        live = int(np.count_nonzero(~expired & ((entries["flags"] & CT_REPLY) == 0)))
        removed = 0
        for index in np.flatnonzero(expired):
            key = CtKey.from_buffer_copy(keys[index].tobytes())
            entry = CtEntry.from_buffer_copy(entries[index].tobytes())
            with guard:
                gone, alive = self._collect_one(key, entry, now)
            removed += gone
            live += alive
        self.live = live
        return removed

    def _collect_one(self, key: CtKey, entry: CtEntry, now: int) -> tuple[int, int]:
        """(removed, still live) for one expired-looking entry, looked at again."""
        if entry.flags & CT_REPLY:
            # its forward entry decides; delete the reply alone only when orphaned
            forward_key, _ = reply_of(key, entry)
            if self.maps.conntrack.lookup(forward_key) is None:
                self.maps.conntrack.delete(key)
            return 0, 0
        current = self.maps.conntrack.lookup(key)
        if current is None or not expired(current, now):
            return 0, 0  # gone, or refreshed by a packet meanwhile (counted when seen again)
        reply = None
        if not current.flags & CT_DSR:
            reply = self.maps.conntrack.lookup(reply_of(key, current)[0])
        if reply is not None and not expired(reply, now):
            return 0, 1  # traffic the other way keeps it
        self._remove(key, current)
        return 1, 0

    # events ------------------------------------------------------------------------------

    def open_events(self, callback: Callable[[ConnEvent], None]) -> None:
        """Deliver each ring-buffer event to ``callback`` (during `poll_events`)."""
        if self._events is None:
            raise RuntimeError("events need the loaded dataplane (the ring buffer is not pinned)")

        def raw(_ctx: Any, data: int, size: int) -> int:
            callback(ConnEvent.decode(ctypes.string_at(data, size)))
            return 0

        self._callback = raw  # keep a reference: bcc holds only the ctypes wrapper
        self._events.open_events(raw)

    def poll_events(self, timeout_ms: int) -> None:
        """Run the callback for pending events, waiting at most ``timeout_ms``. Blocking."""
        if self._events is None:
            raise RuntimeError("events were not opened")
        self._events.poll_events(timeout_ms)
