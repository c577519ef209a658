"""State-store keys shared by the daemon and its services."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .config import Config
from .state import StateKey, StateStore

RUNNING_CONFIG = StateKey[Config]("config/running")
CONFIG_GENERATION = StateKey[int]("config/generation")
#: Successful reloads so far, changed or not: services re-read the files the config names
#: (keys) on each, since a file can change while the config does not.
RELOADS = StateKey[int]("config/reloads")
#: Set by conntrack sync: True once its bulk resync from the peers is complete, False again
#: while it is behind a peer that was down (HA's join gate follows it).
SYNC_RESYNCED = StateKey[bool]("sync/resynced")


async def each_reload(store: StateStore) -> AsyncIterator[Config]:
    """The running config after each successful reload from now on (changed or not: the files
    it names may have changed), for services that re-read such files (key rotation)."""
    seen = store.get(RELOADS)
    async for _ in store.watch(RELOADS.name):
        reloads, cfg = store.get(RELOADS), store.get(RUNNING_CONFIG)
        if reloads == seen or cfg is None:
            continue
        seen = reloads
        yield cfg
