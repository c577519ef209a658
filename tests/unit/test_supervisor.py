"""Supervisor behaviour on Trio's fake clock: back-off, isolation of siblings, escalation."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from appliance.state import StateStore
from appliance.supervisor import (
    RestartPolicy,
    ServiceEscalation,
    ServiceSpec,
    ServiceState,
    Supervisor,
    service_key,
)

POLICY = RestartPolicy(
    initial_backoff_s=1.0, max_backoff_s=8.0, multiplier=2.0, max_failures=5, window_s=60.0
)


class Crasher:
    """Starts fine, then crashes after `run_for` seconds; records each start time."""

    def __init__(self, run_for: float = 0.0, crashes: int = 10**9) -> None:
        self.starts: list[float] = []
        self.run_for = run_for
        self.crashes = crashes

    async def __call__(self, *, task_status: trio.TaskStatus[None]) -> None:
        self.starts.append(trio.current_time())
        task_status.started()
        await trio.sleep(self.run_for)
        if len(self.starts) <= self.crashes:
            raise RuntimeError(f"crash #{len(self.starts)}")
        await trio.sleep_forever()


class Ticker:
    def __init__(self) -> None:
        self.ticks = 0

    async def __call__(self, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            await trio.sleep(1)
            self.ticks += 1


def test_backoff_doubles_and_caps() -> None:
    assert [POLICY.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


async def test_crashing_service_restarts_with_backoff_and_sibling_keeps_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = StateStore()
    crasher = Crasher(run_for=0.0, crashes=3)
    ticker = Ticker()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, store)
        await sup.start(ServiceSpec("ticker", ticker, POLICY))
        t0 = trio.current_time()
        await sup.start(ServiceSpec("crasher", crasher, POLICY))
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(crasher.starts, crasher.starts[1:], strict=False)]
    assert crasher.starts[0] == pytest.approx(t0)
    assert gaps == pytest.approx([1.0, 2.0, 4.0])  # back-off doubles between restarts
    assert len(crasher.starts) == 4  # fourth start survives
    assert ticker.ticks >= 29  # the sibling never stopped
    status = store.require(service_key("crasher"))
    assert status.state is ServiceState.RUNNING
    assert status.restarts == 3
    assert status.last_error == "RuntimeError: crash #3"


async def test_escalation_after_too_many_failures_in_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = StateStore()
    crasher = Crasher(run_for=0.5)
    ticker = Ticker()
    escalations: list[ServiceEscalation] = []
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, store, escalations.append)
        await sup.start(ServiceSpec("ticker", ticker, POLICY))
        await sup.start(ServiceSpec("crasher", crasher, POLICY, critical=True))
        await trio.sleep(120)
        nursery.cancel_scope.cancel()
    # max_failures=5 → the 6th failure in the window escalates; no 7th start happens
    assert len(crasher.starts) == 6
    assert [e.name for e in escalations] == ["crasher"]
    assert escalations[0].failures == 6
    assert store.require(service_key("crasher")).state is ServiceState.FAILED
    assert ticker.ticks >= 119


async def test_non_critical_escalation_leaves_service_failed_without_callback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = StateStore()
    escalations: list[ServiceEscalation] = []
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, store, escalations.append)
        await sup.start(ServiceSpec("flaky", Crasher(run_for=0.1), POLICY))
        await trio.sleep(120)
        nursery.cancel_scope.cancel()
    assert escalations == []
    assert store.require(service_key("flaky")).state is ServiceState.FAILED


async def test_failures_spread_over_time_never_escalate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = StateStore()
    crasher = Crasher(run_for=20.0)  # one failure every ~20 s: at most 3 in any 60 s window
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, store)
        await sup.start(ServiceSpec("slow", crasher, POLICY, critical=True))
        await trio.sleep(600)
        nursery.cancel_scope.cancel()
    assert len(crasher.starts) > 20
    assert store.require(service_key("slow")).state is not ServiceState.FAILED


async def test_service_that_never_starts_escalates_from_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def broken(*, task_status: trio.TaskStatus[None]) -> None:
        raise OSError("cannot bind")

    store = StateStore()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, store)
        with pytest.raises(ServiceEscalation, match="cannot bind"):
            await sup.start(ServiceSpec("broken", broken, POLICY))
    assert store.require(service_key("broken")).state is ServiceState.FAILED


async def test_start_order_is_explicit(autojump_clock: trio.testing.MockClock) -> None:
    order: list[str] = []

    def make(name: str, delay: float):  # type: ignore[no-untyped-def]
        async def service(*, task_status: trio.TaskStatus[None]) -> None:
            await trio.sleep(delay)  # slow start-up
            order.append(name)
            task_status.started()
            await trio.sleep_forever()

        return service

    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, StateStore())
        await sup.start(ServiceSpec("first", make("first", 5.0)))
        await sup.start(ServiceSpec("second", make("second", 0.1)))
        nursery.cancel_scope.cancel()
    assert order == ["first", "second"]


async def test_clean_exit_is_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    runs = 0

    async def oneshot(*, task_status: trio.TaskStatus[None]) -> None:
        nonlocal runs
        runs += 1
        task_status.started()

    store = StateStore()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, store)
        await sup.start(ServiceSpec("oneshot", oneshot))
        await trio.sleep(10)
    assert runs == 1
    assert store.require(service_key("oneshot")).state is ServiceState.STOPPED


async def test_stop_cancels_one_service_only(autojump_clock: trio.testing.MockClock) -> None:
    a, b = Ticker(), Ticker()
    async with trio.open_nursery() as nursery:
        sup = Supervisor(nursery, StateStore())
        await sup.start(ServiceSpec("a", a))
        await sup.start(ServiceSpec("b", b))
        await trio.sleep(5.5)
        sup.stop("a")
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert a.ticks == 5
    assert b.ticks == 10
