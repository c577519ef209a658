"""Event-loop lag monitor: how late the Trio loop wakes a sleeping task.

A task sleeps `interval` and records how much later than its deadline it woke. Samples sit in a
bounded window; p50/p99/max are published to the state store once per `publish_every`.
"""

from __future__ import annotations

import math
from collections import deque

import attrs
import trio

from .state import StateKey, StateStore


@attrs.frozen
class LoopLag:
    p50_s: float
    p99_s: float
    max_s: float
    samples: int


LOOP_LAG = StateKey[LoopLag]("daemon/loop_lag")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class LagWindow:
    def __init__(self, size: int = 600) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def add(self, lag: float) -> None:
        self._samples.append(max(0.0, lag))

    def summary(self) -> LoopLag:
        ordered = sorted(self._samples)
        return LoopLag(
            p50_s=percentile(ordered, 0.50),
            p99_s=percentile(ordered, 0.99),
            max_s=ordered[-1] if ordered else 0.0,
            samples=len(ordered),
        )


class LoopLagMonitor:
    def __init__(
        self, store: StateStore, interval: float = 0.05, publish_every: float = 1.0
    ) -> None:
        self._store = store
        self._interval = interval
        self._publish_every = publish_every
        self.window = LagWindow()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        next_publish = trio.current_time() + self._publish_every
        while True:
            deadline = trio.current_time() + self._interval
            await trio.sleep_until(deadline)
            now = trio.current_time()
            self.window.add(now - deadline)
            if now >= next_publish:
                self._store.publish(LOOP_LAG, self.window.summary())
                next_publish = now + self._publish_every
