"""The intent controller: recomputes the node's intent whenever its inputs change.

Inputs are state values (running config, HA roles, endpoint health) and the VIP pool
allocation, which this controller keeps: computed by `pools.allocate` from the running config
and the previous allocation, saved to ``<state dir>/<node>/pools.json`` whenever it changes
(so an address never moves under a running service, across restarts too) and published as
`POOL_ALLOCATION`. The output is the `INTENT` state value that every reconciler (VIP
addresses, BGP adverts, dataplane) follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs
import trio

from .config import Config, IPAddress
from .intent import INTENT, EndpointHealth, HaRole, compute_intent, role_key
from .keys import CONFIG_GENERATION, RUNNING_CONFIG, Applied, applied_key
from .pools import Allocation, allocate, load_allocation, save_allocation
from .state import StateKey, StateStore
from .structlog import get_logger

log = get_logger("intent")

ENDPOINT_HEALTH = StateKey[EndpointHealth]("health/endpoints")
#: endpoints an operator drained (service name, address, port): no new connections, open
#: ones continue — programmed as an endpoint probed down is; kept until undrained or restart
DRAINED = StateKey[frozenset[tuple[str, IPAddress, int]]]("operator/drained")
POOL_ALLOCATION = StateKey[Allocation]("pools/allocation")
POOLS_FILE = "pools.json"


_CONFIG_KEYS = frozenset({RUNNING_CONFIG.name, CONFIG_GENERATION.name})


def is_intent_input(key: str) -> bool:
    """Running config, endpoint health, drains and HA roles (not the HA groups' chatty
    status)."""
    return (
        key in _CONFIG_KEYS
        or key.startswith(("health/", "operator/"))
        or (key.startswith("ha/") and key.endswith("/role"))
    )


def current_roles(store: StateStore, cfg: Config) -> Mapping[int, HaRole]:
    if cfg.ha is None:
        return {}
    return {g.id: store.get(role_key(g.id)) or HaRole.INIT for g in cfg.ha.groups}


class IntentController:
    """``state_dir`` None: the allocation is kept in memory only (tests of other parts)."""

    def __init__(self, store: StateStore, state_dir: Path | None = None) -> None:
        self._store = store
        self._state_dir = state_dir
        self._allocated_for: Config | None = None
        self._allocation = Allocation({})

    def _pools_file(self, cfg: Config) -> Path | None:
        if self._state_dir is None:
            return None
        return self._state_dir / cfg.node.name / POOLS_FILE

    async def _allocate(self, cfg: Config) -> None:
        """Allocate pool addresses for ``cfg`` (once per config) and save them if they
        changed. A failed save is logged: the allocation still applies (it is deterministic,
        so the next start computes it again unless the config changed meanwhile)."""
        if cfg is self._allocated_for:
            return
        path = self._pools_file(cfg)
        if self._allocated_for is None and path is not None:
            previous = await trio.to_thread.run_sync(load_allocation, path)
        else:
            previous = dict(self._allocation.addresses)
        allocation = allocate(cfg.vip_pools, cfg.services, previous)
        if allocation.conflicts != self._allocation.conflicts and allocation.conflicts:
            log.warning("pool_conflicts", conflicts=list(allocation.conflicts))
        if allocation.addresses != previous and path is not None:
            try:
                await trio.to_thread.run_sync(save_allocation, path, allocation)
            except OSError as exc:
                log.error("pool_allocation_save_failed", path=str(path), error=str(exc))
        if allocation.addresses != self._allocation.addresses:
            log.info(
                "pool_allocation",
                addresses={name: str(a) for name, a in sorted(allocation.addresses.items())},
            )
        self._allocated_for, self._allocation = cfg, allocation
        self._store.publish(POOL_ALLOCATION, allocation)

    async def recompute(self) -> None:
        cfg = self._store.require(RUNNING_CONFIG)
        generation = self._store.get(CONFIG_GENERATION) or 0
        await self._allocate(cfg)
        probed: EndpointHealth = self._store.get(ENDPOINT_HEALTH) or {}
        health = {**probed, **dict.fromkeys(self._store.get(DRAINED) or (), False)}
        intent = compute_intent(
            cfg,
            current_roles(self._store, cfg),
            health,
            self._allocation.addresses,
            self._allocation.conflicts,
        )
        self._store.publish(INTENT, attrs.evolve(intent, generation=generation))
        answer = self._store.get(applied_key("intent"))
        if answer is None or answer.generation != generation:
            self._store.publish(applied_key("intent"), Applied(generation))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.recompute()
        task_status.started()
        seen = self._store.version
        while True:
            await self._store.wait_changed(seen)
            changes = self._store.changes_since(seen)
            seen = self._store.version
            if any(is_intent_input(c.key) for c in changes):
                await self.recompute()
