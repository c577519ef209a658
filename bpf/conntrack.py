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
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import attrs

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


def reply_of(key: CtKey, entry: CtEntry) -> tuple[CtKey, CtEntry]:
    """The reply-direction key and entry of a forward (key, entry)."""
    raw = bytes(entry)
    reply_key, back = _reply_parts(bytes(key), raw[:12])
    reply = CtEntry.from_buffer_copy(back + raw[12:])
    reply.flags = entry.flags | CT_REPLY
    return CtKey.from_buffer_copy(reply_key), reply


def _reply_parts(key: bytes, nat: bytes) -> tuple[bytes, bytes]:
    """For a raw forward key and its translation tuple (source, destination, source port,
    destination port): the reply direction's key — the translated tuple reversed — and the
    tuple the reply translates back to — the original one reversed."""
    reply_key = nat[4:8] + nat[0:4] + nat[10:12] + nat[8:10] + key[12:13] + bytes(3)
    back = key[4:8] + key[0:4] + key[10:12] + key[8:10]
    return reply_key, back


def timeout_ns(entry: CtEntry) -> int:
    return _timeout_of_state(int(entry.state))


def _timeout_of_state(value: int) -> int:
    state = _state(value)
    seconds = CT_TIMEOUT_S[state] if isinstance(state, CtState) else DEFAULT_TIMEOUT_S
    return seconds * 1_000_000_000


#: where a raw entry keeps what the collector looks at first (no ctypes object per entry)
_STATE_AT, _FLAGS_AT, _LAST_AT = CtEntry.state.offset, CtEntry.flags.offset, CtEntry.last_ns.offset
_TIMEOUTS = {value: _timeout_of_state(value) for value in range(256)}
#: a raw `CtEntry`: translation tuple, svc_id + ep_index (6 bytes), state, flags, ep_mac +
#: fin_seen + pad + alignment (12 bytes), created_ns, last_ns, packets + bytes (16 bytes)
_RAW = struct.Struct("=12s6sBB12sQQ16s")
_SLOT = struct.Struct("=IH")  # svc_id, ep_index


def expired(entry: CtEntry, now_ns: int) -> bool:
    """Idle for longer than its state's timeout."""
    return now_ns - int(entry.last_ns) > timeout_ns(entry)


def _add_slot(deltas: dict[tuple[int, int], int], slot: tuple[int, int], delta: int) -> None:
    deltas[slot] = deltas.get(slot, 0) + delta


def _counted_raw(entry: bytes) -> bool:
    """`counted` on a raw entry."""
    return not entry[_FLAGS_AT] & CT_REPLY and entry[_STATE_AT] != CtState.CLOSED


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

    def forward_raw(self) -> list[tuple[bytes, bytes]]:
        """`forward_entries` as raw key and entry bytes (a bulk resync reads the whole table)."""
        flags = CtEntry.flags.offset
        return [(k, v) for k, v in self.maps.conntrack.batch_raw() if not v[flags] & CT_REPLY]

    def count(self) -> int:
        """Connections (forward entries)."""
        return len(self._forward())

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
        """`insert` for many connections; see `insert_raw`."""
        raw = [(bytes(key), bytes(entry)) for key, entry in items]
        return self.insert_raw(raw, now_ns, keep_local=keep_local)

    def insert_raw(
        self,
        items: Sequence[tuple[bytes, bytes]],
        now_ns: int | None = None,
        *,
        keep_local: bool = False,
    ) -> tuple[int, int]:
        """`insert` for many connections given as raw `CtKey` / `CtEntry` bytes, written with
        batched map updates and no ctypes object per connection (a bulk resync brings
        ~100,000). ``keep_local``: a connection this node has as its own (not learnt) is left
        alone. Returns (written, kept)."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        table = self.maps.conntrack
        keys: list[bytes] = []
        values: list[bytes] = []
        deltas: dict[tuple[int, int], int] = {}
        written = kept = 0
        buffer = ctypes.create_string_buffer(table.value_size)
        for key, entry in items:
            old = table.lookup_raw(key, buffer)
            if keep_local and old is not None and not old[_FLAGS_AT] & CT_REMOTE:
                kept += 1
                continue
            nat, svc_ep, state, flags, tail, created, _last, counters = _RAW.unpack(entry)
            flags = (flags | CT_REMOTE) & ~CT_REPLY
            if not created or created > now:
                created = now
            forward = _RAW.pack(nat, svc_ep, state, flags, tail, created, now, counters)
            if not flags & CT_DSR:
                reply_key, back = _reply_parts(key, nat)
                keys.append(reply_key)
                values.append(
                    _RAW.pack(back, svc_ep, state, flags | CT_REPLY, tail, created, now, counters)
                )
            keys.append(key)
            values.append(forward)
            written += 1
            slot = _SLOT.unpack(svc_ep)
            before = old is not None and _counted_raw(old)
            if before and old is not None and _SLOT.unpack(old[12:18]) != slot:
                _add_slot(deltas, _SLOT.unpack(old[12:18]), -1)
                before = False
            now_counted = state != CtState.CLOSED
            if now_counted and not before:
                _add_slot(deltas, slot, +1)
            elif before and not now_counted:
                _add_slot(deltas, slot, -1)
        table.update_batch(keys, values)
        for (svc_id, ep_index), delta in deltas.items():
            if delta:
                self._add_active_index(svc_id, ep_index, delta)
        return written, kept

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
        removed = 0
        live = 0
        guard = lock if lock is not None else nullcontext()
        for raw_key, raw in list(self.maps.conntrack.batch_raw()):
            # a full table is ~250,000 entries: decide from the raw bytes, build objects only
            # for the expired ones (the walk holds the GIL; the event loop must keep running)
            last = int.from_bytes(raw[_LAST_AT : _LAST_AT + 8], sys.byteorder)
            if now - last <= _TIMEOUTS[raw[_STATE_AT]]:
                live += not raw[_FLAGS_AT] & CT_REPLY
                continue
            key, entry = CtKey.from_buffer_copy(raw_key), CtEntry.from_buffer_copy(raw)
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
