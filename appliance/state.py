"""The observable state store: values that services publish and others read or await.

Components never reach into each other; they meet here (and in the intent). A value is
published under a typed key; readers get the latest value, await a condition, or watch a
key prefix for changes. Values should be immutable (attrs frozen classes, tuples, scalars).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, TypeVar, cast

import attrs
import trio

T = TypeVar("T")


@attrs.frozen
class StateKey(Generic[T]):
    """A typed name: `StateKey[str]("ha/1/role")`."""

    name: str


@attrs.frozen
class StateChange:
    version: int
    key: str
    value: object


class StateStore:
    def __init__(self) -> None:
        self._values: dict[str, object] = {}
        self._versions: dict[str, int] = {}
        self._version = 0
        self._changed = trio.Event()

    @property
    def version(self) -> int:
        return self._version

    def publish(self, key: StateKey[T], value: T) -> bool:
        """Set a value; returns False (and wakes nobody) when it is unchanged."""
        if key.name in self._values and self._values[key.name] == value:
            return False
        self._values[key.name] = value
        self._version += 1
        self._versions[key.name] = self._version
        self._changed.set()
        self._changed = trio.Event()
        return True

    def remove(self, key: StateKey[Any]) -> None:
        if key.name in self._values:
            del self._values[key.name]
            self._version += 1
            self._versions[key.name] = self._version
            self._changed.set()
            self._changed = trio.Event()

    def get(self, key: StateKey[T], default: T | None = None) -> T | None:
        return cast("T | None", self._values.get(key.name, default))

    def require(self, key: StateKey[T]) -> T:
        if key.name not in self._values:
            raise KeyError(key.name)
        return cast(T, self._values[key.name])

    def snapshot(self, prefix: str = "") -> dict[str, object]:
        return {k: v for k, v in sorted(self._values.items()) if k.startswith(prefix)}

    def changes_since(self, version: int, prefix: str = "") -> list[StateChange]:
        """Keys changed after `version` (removed keys carry the value None)."""
        return [
            StateChange(v, k, self._values.get(k))
            for k, v in sorted(self._versions.items(), key=lambda kv: kv[1])
            if v > version and k.startswith(prefix)
        ]

    async def wait_changed(self, since: int) -> int:
        """Return once the store's version exceeds `since`; returns the new version."""
        while self._version <= since:
            await self._changed.wait()
        return self._version

    async def wait_for(self, key: StateKey[T], predicate: Callable[[T | None], bool]) -> T | None:
        """Await until `predicate(value)` holds for the key's current value; return it."""
        while True:
            value = self.get(key)
            if predicate(value):
                return value
            await self._changed.wait()

    async def watch(self, prefix: str = "") -> AsyncIterator[list[StateChange]]:
        """Yield batches of changes under `prefix`, starting with the current values."""
        seen = 0
        while True:
            batch = self.changes_since(seen, prefix)
            seen = self._version
            if batch:
                yield batch
            await self.wait_changed(seen)
