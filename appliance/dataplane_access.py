"""Access to the live connection table, published as state values: read access for the API,
and the replica interface conntrack sync uses.

The state store holds values, not services: the dataplane service publishes a
`ConntrackReader` under `DATAPLANE_CONNTRACK` once its maps are loaded (`publish_conntrack`)
and withdraws it before closing them (`withdraw_conntrack`), as the BGP speaker publishes
``bgp/control``. Readers are blocking map system calls: call them in a worker thread.

`LockedConntrack` runs each read under the dataplane service's lock, so the API's reads are
serialised with the service's own map calls, and a reader withdrawn while a read is in flight
waits for it: the maps are never read after they are closed.

`ConntrackReplica` (published under `DATAPLANE_REPLICA` the same way) is what conntrack sync
needs: the connection events, the current service/endpoint numbering (`Identity`), the whole
table for a bulk resync, and writing connections learnt from peers (blocking, locked).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs
import trio

from bpf.conntrack import ConnEvent, Conntrack, CtFilter, CtRecord
from bpf.identity import Identity
from bpf.layout import CT_REMOTE, CtEntry, CtKey
from bpf.records import Records, of_pairs

from .state import StateKey, StateStore

__all__ = [
    "DATAPLANE_CONNTRACK",
    "DATAPLANE_REPLICA",
    "ApplyOp",
    "ApplyReport",
    "ConntrackReader",
    "ConntrackReplica",
    "DataplaneStopped",
    "LockedConntrack",
    "LockedReplica",
    "publish_conntrack",
    "publish_replica",
    "withdraw_conntrack",
    "withdraw_replica",
]


class ConntrackReader(Protocol):
    """What the API reads from the connection table (`bpf.conntrack.Conntrack` is one)."""

    def count(self) -> int: ...

    def entries(
        self, limit: int = ..., offset: int = ..., filter: CtFilter | None = ...
    ) -> list[CtRecord]: ...


DATAPLANE_CONNTRACK = StateKey[ConntrackReader]("dataplane/conntrack")


class DataplaneStopped(Exception):
    """The reader was withdrawn: the dataplane service stopped (its maps are closed)."""


class LockedConntrack:
    """A `ConntrackReader` over ``conntrack`` whose reads hold ``lock``; `retire` ends it."""

    def __init__(self, conntrack: ConntrackReader, lock: threading.Lock) -> None:
        self._conntrack: ConntrackReader | None = conntrack
        self._lock = lock

    def _live(self) -> ConntrackReader:
        if self._conntrack is None:
            raise DataplaneStopped("the dataplane service stopped")
        return self._conntrack

    def count(self) -> int:
        with self._lock:
            return self._live().count()

    def entries(
        self, limit: int = 100, offset: int = 0, filter: CtFilter | None = None
    ) -> list[CtRecord]:
        with self._lock:
            return self._live().entries(limit=limit, offset=offset, filter=filter)

    def retire(self) -> None:
        """Blocking: waits for a read in flight; every later read raises `DataplaneStopped`."""
        with self._lock:
            self._conntrack = None


def publish_conntrack(store: StateStore, conntrack: ConntrackReader, lock: threading.Lock) -> None:
    store.publish(DATAPLANE_CONNTRACK, LockedConntrack(conntrack, lock))


async def withdraw_conntrack(store: StateStore) -> None:
    """Remove the published reader and wait (in a worker thread) until no read is in flight."""
    reader = store.get(DATAPLANE_CONNTRACK)
    store.remove(DATAPLANE_CONNTRACK)
    if isinstance(reader, LockedConntrack):
        await trio.to_thread.run_sync(reader.retire)


# -- the replica interface of conntrack sync -------------------------------------------------


@attrs.frozen
class ApplyReport:
    written: int = 0
    deleted: int = 0
    #: upserts not written because this node has the connection as its own (not learnt)
    kept_local: int = 0


#: what `ConntrackReplica.apply_records` takes, in order: a run of learnt connections (record
#: arrays of their forward keys and entries, `bpf.records`), or the forward key (raw `CtKey`
#: bytes) of a connection that ended
ApplyOp = tuple[Records, Records] | bytes


class ConntrackReplica(Protocol):
    def identity(self) -> Identity: ...

    def subscribe(self, max_buffer: int = ...) -> trio.MemoryReceiveChannel[ConnEvent]: ...

    def forward_entries(self) -> list[tuple[CtKey, CtEntry]]: ...

    def forward_records(self) -> tuple[Records, Records]: ...

    def apply(self, ops: Sequence[tuple[CtKey, CtEntry | None]]) -> ApplyReport: ...

    def apply_records(self, ops: Sequence[ApplyOp]) -> ApplyReport: ...

    def drop_stale(self, keys: Sequence[CtKey]) -> tuple[int, int]: ...


DATAPLANE_REPLICA = StateKey[ConntrackReplica]("dataplane/replica")


class LockedReplica:
    """The replica interface over a loaded dataplane; blocking calls hold ``lock``.

    `apply` writes learnt connections (`Conntrack.insert`: flagged remote, with their reply
    entries) unless this node has the connection as its own — an entry it created is the
    authority on it — and deletes connections by their forward key."""

    def __init__(
        self,
        conntrack: Conntrack,
        lock: threading.Lock,
        identity: Callable[[], Identity],
        subscribe: Callable[[int], trio.MemoryReceiveChannel[ConnEvent]],
    ) -> None:
        self._conntrack: Conntrack | None = conntrack
        self._lock = lock
        self._identity = identity
        self._subscribe = subscribe

    def _live(self) -> Conntrack:
        if self._conntrack is None:
            raise DataplaneStopped("the dataplane service stopped")
        return self._conntrack

    def identity(self) -> Identity:
        return self._identity()

    def subscribe(self, max_buffer: int = 65_536) -> trio.MemoryReceiveChannel[ConnEvent]:
        return self._subscribe(max_buffer)

    def forward_entries(self) -> list[tuple[CtKey, CtEntry]]:
        with self._lock:
            return self._live().forward_entries()

    def forward_records(self) -> tuple[Records, Records]:
        """Every connection's forward key and entry as record arrays (`bpf.records`); read
        without the lock (a walk of the live map, like the program's own updates, needs
        none), so a resync of a full table never holds writers back."""
        return self._live().forward_records()

    def apply(self, ops: Sequence[tuple[CtKey, CtEntry | None]]) -> ApplyReport:
        """`apply_records` for (key, entry) pairs; a None entry deletes."""
        runs: list[ApplyOp] = []
        pending: list[tuple[CtKey, CtEntry]] = []
        for key, entry in ops:
            if entry is not None:
                pending.append((key, entry))
                continue
            if pending:
                runs.append(of_pairs(pending))
                pending = []
            runs.append(bytes(key))
        if pending:
            runs.append(of_pairs(pending))
        return self.apply_records(runs)

    def apply_records(self, ops: Sequence[ApplyOp]) -> ApplyReport:
        """In order: runs of learnt connections are written with batched map updates
        (`Conntrack.insert_records`), deletes one by one."""
        written = deleted = kept = 0
        with self._lock:
            conntrack = self._live()
            for op in ops:
                if isinstance(op, bytes):
                    deleted += conntrack.delete(CtKey.from_buffer_copy(op))
                    continue
                done, left = conntrack.insert_records(*op, keep_local=True)
                written, kept = written + done, kept + left
        return ApplyReport(written, deleted, kept)

    def drop_stale(self, keys: Sequence[CtKey]) -> tuple[int, int]:
        """Delete learnt connections a peer no longer has — unless this node has forwarded
        packets of one since it learnt it (it took the connection over; it is the authority
        now). Returns (deleted, kept)."""
        deleted = kept = 0
        with self._lock:
            conntrack = self._live()
            for key in keys:
                current = conntrack.lookup(key)
                if current is None or not current.flags & CT_REMOTE:
                    continue
                if current.packets:
                    kept += 1
                    continue
                deleted += conntrack.delete(key)
        return deleted, kept

    def retire(self) -> None:
        with self._lock:
            self._conntrack = None


def publish_replica(store: StateStore, replica: LockedReplica) -> None:
    store.publish(DATAPLANE_REPLICA, replica)


async def withdraw_replica(store: StateStore) -> None:
    replica = store.get(DATAPLANE_REPLICA)
    store.remove(DATAPLANE_REPLICA)
    if isinstance(replica, LockedReplica):
        await trio.to_thread.run_sync(replica.retire)
