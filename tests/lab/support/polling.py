"""Bounded waiting: every wait in the interop tests polls with a deadline, never sleeps blind."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Upper bound for anything the tests wait for (session up, route seen, route gone).
DEFAULT_TIMEOUT = 20.0
POLL_INTERVAL = 0.1


def wait_for(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    describe: Callable[[], str] | None = None,
    interval: float = POLL_INTERVAL,
) -> T:
    """Call ``probe`` until it returns a truthy value (returned) or ``timeout`` passes
    (AssertionError naming ``what``, the last value and ``describe()``, e.g. a router's view).
    Probes return the value they looked for, or None / False while it is not there."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = describe() if describe is not None else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}; last: {value!r}\n{detail}"
            )
        time.sleep(interval)


def holds_for(
    probe: Callable[[], bool],
    what: str,
    duration: float,
    describe: Callable[[], str] | None = None,
    interval: float = POLL_INTERVAL,
) -> None:
    """Check ``probe`` repeatedly for ``duration`` seconds; AssertionError as soon as it is
    false. For negative checks ("the session never comes up") after the evidence is in."""
    deadline = time.monotonic() + duration
    while True:
        if not probe():
            detail = describe() if describe is not None else ""
            raise AssertionError(f"no longer true: {what}\n{detail}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
