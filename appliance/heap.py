"""Keep Python's cyclic garbage collector from pausing the event loop.

A full table makes the RIB's dictionaries huge; every full collection would traverse them
(~0.2 s at a million prefixes: a loop lag the protocols cannot afford — an HA master pausing
that long would be taken over). While a bulk load runs, the young generations are collected
and what survives is moved into the collector's permanent generation (`gc.freeze`), at most
every `MIN_INTERVAL_S`. Reference counting still frees frozen objects the moment they are
dropped; only cyclic garbage that happens to exist at a freeze is never reclaimed. It is never
thawed on purpose: a thaw would bring back exactly the long pause this avoids.
"""

from __future__ import annotations

import gc

MIN_INTERVAL_S = 0.05


class HeapFreezer:
    def __init__(self, min_interval_s: float = MIN_INTERVAL_S) -> None:
        self._min_interval_s = min_interval_s
        self._last = float("-inf")
        self.freezes = 0

    def maybe_freeze(self, now: float) -> bool:
        """Collect the young generations, then freeze what survives (rate-limited)."""
        if now - self._last < self._min_interval_s:
            return False
        self._last = now
        gc.collect(1)
        gc.freeze()
        self.freezes += 1
        return True
