"""Read access to the live connection table for the API, published as a state value.

The state store holds values, not services: the dataplane service publishes a
`ConntrackReader` under `DATAPLANE_CONNTRACK` once its maps are loaded (`publish_conntrack`)
and withdraws it before closing them (`withdraw_conntrack`), as the BGP speaker publishes
``bgp/control``. Readers are blocking map system calls: call them in a worker thread.

`LockedConntrack` runs each read under the dataplane service's lock, so the API's reads are
serialised with the service's own map calls, and a reader withdrawn while a read is in flight
waits for it: the maps are never read after they are closed.
"""

from __future__ import annotations

import threading
from typing import Protocol

import trio

from bpf.conntrack import CtFilter, CtRecord

from .state import StateKey, StateStore

__all__ = [
    "DATAPLANE_CONNTRACK",
    "ConntrackReader",
    "DataplaneStopped",
    "LockedConntrack",
    "publish_conntrack",
    "withdraw_conntrack",
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
