"""Keep Python's cyclic garbage collector from pausing the event loop.

A full table makes the RIB's dictionaries huge; every full collection would traverse them
(~0.2 s at a million prefixes: a loop lag the protocols cannot afford). Long-lived objects are
therefore moved, at most once a second while a bulk load runs, into the collector's permanent
generation (`gc.freeze`). Reference counting still frees them the moment they are dropped;
only cyclic garbage that exists at a freeze stays until `thaw` (called when the node is quiet).
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

    def thaw(self) -> None:
        """Give frozen objects back to the collector (one full pass when it next runs)."""
        gc.unfreeze()
