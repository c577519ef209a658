from __future__ import annotations

import trio
import trio.testing

from appliance.looplag import LOOP_LAG, LagWindow, LoopLagMonitor, percentile
from appliance.state import StateStore


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0
    assert percentile([7.0], 0.99) == 7.0


def test_window_is_bounded_and_clamps_negative() -> None:
    window = LagWindow(size=3)
    for lag in (-1.0, 0.1, 0.2, 0.3):
        window.add(lag)
    summary = window.summary()
    assert summary.samples == 3
    assert summary.max_s == 0.3
    assert summary.p50_s == 0.2


async def test_monitor_sees_a_blocked_loop(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    monitor = LoopLagMonitor(store, interval=0.05, publish_every=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(monitor.run)
        await trio.sleep(1.01)
        assert store.require(LOOP_LAG).max_s == 0.0
        await trio.sleep(0.01)
        autojump_clock.jump(0.25)  # the loop is "blocked" for 250 ms: time passes, no wake-up
        await trio.sleep(1.5)
        nursery.cancel_scope.cancel()
    lag = store.require(LOOP_LAG)
    assert 0.2 <= lag.max_s <= 0.25
    assert lag.p50_s == 0.0
