"""Anti-replay for one peer epoch: a sliding window over frame counters (as in RFC 4303 §3.4.3).

Counters increase per sender epoch but may arrive out of order (UDP reorders), so a counter is
accepted once if it is within `WINDOW` of the highest one seen; older or repeated counters are
replays. A retransmitted frame carries a new counter, so it is never mistaken for one.
"""

from __future__ import annotations

__all__ = ["WINDOW", "ReplayWindow"]

WINDOW = 1024
_FULL = (1 << WINDOW) - 1


class ReplayWindow:
    """``highest`` counter accepted and a bitmask of the `WINDOW` counters at and below it."""

    __slots__ = ("_mask", "highest")

    def __init__(self) -> None:
        self.highest = -1
        self._mask = 0  # bit i set: counter highest - i was accepted

    def fresh(self, counter: int) -> bool:
        """True when ``counter`` was not seen and is not too old (does not record it)."""
        if counter > self.highest:
            return True
        offset = self.highest - counter
        return offset < WINDOW and not (self._mask >> offset) & 1

    def accept(self, counter: int) -> None:
        """Record ``counter`` (already checked with `fresh`)."""
        if counter > self.highest:
            shift = counter - self.highest
            if shift >= WINDOW:  # a jump: nothing below stays in the window
                self._mask = 1
            else:
                self._mask = ((self._mask << shift) | 1) & _FULL
            self.highest = counter
        else:
            self._mask |= 1 << (self.highest - counter)
