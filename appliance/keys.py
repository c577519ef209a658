"""State-store keys shared by the daemon and its services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

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


@attrs.frozen
class Applied:
    """A service's answer to a running config: it now follows ``generation`` (``error`` None),
    or it could not apply it (``error`` says why; the committer then restores the previous
    running config, which the service applies like any other)."""

    generation: int
    error: str | None = None


def applied_key(service: str) -> StateKey[Applied]:
    """Where the service named ``service`` (its supervisor name) publishes its `Applied`."""
    return StateKey[Applied](f"config/applied/{service}")


async def each_config(store: StateStore) -> AsyncIterator[tuple[int, Config]]:
    """(generation, running config) now and after each change of the running config: what a
    service that follows the config iterates, publishing `Applied` for each generation."""
    seen = None
    async for _ in store.watch(CONFIG_GENERATION.name):
        generation, cfg = store.get(CONFIG_GENERATION), store.get(RUNNING_CONFIG)
        if generation is None or cfg is None or generation == seen:
            continue
        seen = generation
        yield generation, cfg
