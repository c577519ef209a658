"""The pure rise/fall core of endpoint health: no I/O, no clock, no trio.

One `HealthState` per probed endpoint. It is immutable; `record(result, now)` returns the next
state. ``now`` is only stored (for "since" and "last checked"); the logic counts results.

Start-up: an endpoint starts **unknown**, and unknown counts as **up** (the HAProxy default).
A restarted daemon, a reloaded config or a new endpoint therefore never blackholes traffic that
was flowing, and probes that fail only because the node's network is still coming up do not
withdraw every service at once. From unknown:

* one success confirms it up (it was already counted up, so there is nothing to "rise" from);
* ``fall`` consecutive failures mark it down, exactly as for an endpoint that was up.

Afterwards: up -> down after ``fall`` consecutive failures; down -> up after ``rise``
consecutive successes. A result of the other kind resets the streak, so with ``fall=3`` the
sequence fail, fail, ok, fail, fail keeps an endpoint up.
"""

from __future__ import annotations

import enum

import attrs


class Health(enum.StrEnum):
    UNKNOWN = "unknown"  # no result yet, or failing less than `fall` times since: counts as up
    UP = "up"
    DOWN = "down"


@attrs.frozen
class ProbeResult:
    """One probe's outcome. ``error`` is a short reason ("timeout", "refused", "status 503")."""

    ok: bool
    latency: float | None = None  # seconds, on the prober's clock; None when not measured
    error: str | None = None

    @classmethod
    def success(cls, latency: float) -> ProbeResult:
        return cls(True, latency, None)

    @classmethod
    def failure(cls, error: str, latency: float | None = None) -> ProbeResult:
        return cls(False, latency, error)


@attrs.frozen
class HealthState:
    rise: int
    fall: int
    health: Health = Health.UNKNOWN
    successes: int = 0  # consecutive, since the last failure
    failures: int = 0  # consecutive, since the last success
    last: ProbeResult | None = None
    checked_at: float | None = None  # when `last` arrived
    since: float | None = None  # when `health` last changed (or the state was created)

    def __attrs_post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError("rise and fall must be >= 1")

    @classmethod
    def initial(cls, rise: int, fall: int, now: float) -> HealthState:
        return cls(rise=rise, fall=fall, since=now)

    @property
    def up(self) -> bool:
        """Whether traffic may go to the endpoint: unknown counts as up."""
        return self.health is not Health.DOWN

    def record(self, result: ProbeResult, now: float) -> HealthState:
        """The state after ``result``."""
        if result.ok:
            successes, failures = self.successes + 1, 0
        else:
            successes, failures = 0, self.failures + 1
        health = self._next_health(successes, failures)
        return attrs.evolve(
            self,
            health=health,
            successes=successes,
            failures=failures,
            last=result,
            checked_at=now,
            since=now if health is not self.health else self.since,
        )

    def _next_health(self, successes: int, failures: int) -> Health:
        if failures >= self.fall:
            return Health.DOWN
        if self.health is Health.DOWN:
            return Health.UP if successes >= self.rise else Health.DOWN
        if self.health is Health.UNKNOWN:
            return Health.UP if successes else Health.UNKNOWN
        return Health.UP

    def retuned(self, rise: int, fall: int, *, keep_counts: bool) -> HealthState:
        """The same health under new thresholds (a changed probe). ``keep_counts`` False (the
        probe now checks something else): the streaks start again, the up/down verdict stays
        until the new probe's results overturn it."""
        if keep_counts:
            return attrs.evolve(self, rise=rise, fall=fall)
        return attrs.evolve(self, rise=rise, fall=fall, successes=0, failures=0)
