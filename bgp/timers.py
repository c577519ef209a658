"""Timer bookkeeping for the sans-IO BGP session: deadlines, jitter and back-off.

Nothing here reads a clock. Every method takes ``now`` (seconds as a float, from whatever clock
the shell uses) and timers are plain deadlines on that clock; the shell sleeps until the earliest
one and calls `BgpSession.handle_timer`.
"""

from __future__ import annotations

import random

import attrs

JITTER_LOW = 0.75
JITTER_HIGH = 1.0
"""RFC 4271 §10: KeepaliveTimer and ConnectRetryTimer are multiplied by a random factor
uniformly distributed in 0.75..1.0, drawn anew each time the timer is set."""

OPENSENT_HOLD_TIME = 240.0
"""RFC 4271 §8.2.2: the "large value" the HoldTimer gets while waiting for the peer's OPEN."""

MIN_SEND_HOLD_TIME = 480.0
"""RFC 9687 §3: the SendHoldTime defaults to the greater of 8 minutes and twice the HoldTime."""


def jittered(rng: random.Random, seconds: float) -> float:
    """``seconds`` scaled by a fresh RFC 4271 §10 jitter factor."""
    return seconds * rng.uniform(JITTER_LOW, JITTER_HIGH)


def default_send_hold_time(hold_time: float) -> float:
    """RFC 9687 default SendHoldTime for a negotiated HoldTime."""
    return max(MIN_SEND_HOLD_TIME, 2 * hold_time)


@attrs.define
class Timer:
    """One FSM timer: a deadline, or None while stopped."""

    deadline: float | None = None

    def start(self, now: float, seconds: float) -> None:
        self.deadline = now + seconds

    def stop(self) -> None:
        self.deadline = None

    def due(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    @property
    def running(self) -> bool:
        return self.deadline is not None


@attrs.define
class IdleHoldBackoff:
    """IdleHoldTime with RFC 4271 §8.1.1 DampPeerOscillations: after each consecutive session
    failure the wait before the automatic restart doubles, from ``initial`` up to ``maximum``.
    Without damping every wait is ``initial``."""

    initial: float = 1.0
    maximum: float = 60.0
    damp: bool = True
    _current: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._current = self.initial

    def next_delay(self) -> float:
        """The wait to use now; the following one is doubled (when damping)."""
        delay = self._current
        if self.damp:
            self._current = min(self._current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._current = self.initial


@attrs.define
class SendProgress:
    """Bytes the session queued for the transport versus bytes the shell confirmed written
    (RFC 9687). ``progress_at`` is the last time the backlog was empty or shrank; the session
    declares the send side stuck when a backlog exists and nothing drained for SendHoldTime."""

    backlog: int = 0
    progress_at: float = 0.0

    def queued(self, nbytes: int, now: float) -> None:
        if self.backlog == 0:
            self.progress_at = now
        self.backlog += nbytes

    def drained(self, nbytes: int, now: float) -> None:
        if nbytes <= 0 or self.backlog == 0:
            return
        self.backlog = max(0, self.backlog - nbytes)
        self.progress_at = now

    def restart(self, now: float) -> None:
        """Count the stall from ``now`` (e.g. on entering Established)."""
        self.progress_at = now

    def reset(self) -> None:
        self.backlog = 0

    def stuck_deadline(self, send_hold_time: float) -> float | None:
        """When the backlog will have been stuck for ``send_hold_time``, or None if empty."""
        if self.backlog == 0:
            return None
        return self.progress_at + send_hold_time
