"""The intent controller: recomputes the node's intent whenever its inputs change.

Inputs are state values (running config, HA roles, endpoint health); the output is the
`INTENT` state value that every reconciler (BGP adverts, VIP addresses, dataplane) follows.
"""

from __future__ import annotations

from collections.abc import Mapping

import trio

from .config import Config
from .intent import INTENT, EndpointHealth, HaRole, compute_intent, role_key
from .keys import RUNNING_CONFIG
from .state import StateKey, StateStore

ENDPOINT_HEALTH = StateKey[EndpointHealth]("health/endpoints")


def is_intent_input(key: str) -> bool:
    """Running config, endpoint health and HA roles (not the HA groups' chatty status)."""
    return key.startswith(("config/", "health/")) or (
        key.startswith("ha/") and key.endswith("/role")
    )


def current_roles(store: StateStore, cfg: Config) -> Mapping[int, HaRole]:
    if cfg.ha is None:
        return {}
    return {g.id: store.get(role_key(g.id)) or HaRole.INIT for g in cfg.ha.groups}


class IntentController:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    def recompute(self) -> None:
        cfg = self._store.require(RUNNING_CONFIG)
        health = self._store.get(ENDPOINT_HEALTH) or {}
        self._store.publish(INTENT, compute_intent(cfg, current_roles(self._store, cfg), health))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.recompute()
        task_status.started()
        seen = self._store.version
        while True:
            await self._store.wait_changed(seen)
            changes = self._store.changes_since(seen)
            seen = self._store.version
            if any(is_intent_input(c.key) for c in changes):
                self.recompute()
