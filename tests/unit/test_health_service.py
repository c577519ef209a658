"""The health scheduler's logic on trio's MockClock, with a deterministic probe function.

The probe function is injected (a parameter of `HealthService`): these tests are about
timing, jitter, thresholds, concurrency and following the config. The real probes are tested
against real servers in tests/lab/test_health_probes.py.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs
import pytest
import trio
import trio.testing

from appliance.config.model import Config, Endpoint, Node, Probe, ProbeType, Service
from appliance.config.values import IPAddress
from appliance.controller import ENDPOINT_HEALTH
from appliance.health import HEALTH_STATUS, Health, HealthService, ProbeResult, probe_targets
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore

A = ipaddress.ip_address("10.0.0.1")
B = ipaddress.ip_address("10.0.0.2")
C = ipaddress.ip_address("10.0.0.3")
TCP = Probe(ProbeType.TCP, interval_ms=1000, timeout_ms=500, rise=2, fall=3)


@attrs.define
class FakeProber:
    """Answers from `down`; records every call as (time, address, port, probe)."""

    latency: float = 0.0
    down: set[IPAddress] = attrs.field(factory=set)
    calls: list[tuple[float, IPAddress, int, Probe]] = attrs.field(factory=list)
    running: int = 0
    max_running: int = 0
    behaviour: Callable[[IPAddress], None] | None = None

    async def __call__(self, address: IPAddress, port: int, probe: Probe) -> ProbeResult:
        self.calls.append((trio.current_time(), address, port, probe))
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.behaviour is not None:
                self.behaviour(address)
            await trio.sleep(self.latency)
        finally:
            self.running -= 1
        if address in self.down:
            return ProbeResult.failure("refused", self.latency)
        return ProbeResult.success(self.latency)

    def times(self, address: IPAddress, port: int | None = None) -> list[float]:
        return [t for t, a, p, _ in self.calls if a == address and (port is None or p == port)]


def config(*services: Service) -> Config:
    return Config(node=Node("n1", 1), services=services)


def service(
    name: str = "web", endpoints: tuple[IPAddress, ...] = (A, B), probe: Probe | None = TCP
) -> Service:
    return Service(
        name=name,
        port=80,
        vip=ipaddress.ip_address("198.51.100.1"),
        endpoints=tuple(Endpoint(a, 80) for a in endpoints),
        probe=probe,
    )


@asynccontextmanager
async def running(
    store: StateStore, prober: FakeProber, **options: object
) -> AsyncIterator[HealthService]:
    svc = HealthService(store, probe=prober, rng=random.Random(7), **options)  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        yield svc
        nursery.cancel_scope.cancel()


async def wait_health(
    store: StateStore, key: tuple[str, IPAddress, int], up: bool, bound: float = 60
) -> None:
    with trio.fail_after(bound):
        await store.wait_for(ENDPOINT_HEALTH, lambda h: h is not None and h.get(key) is up)


def health(store: StateStore) -> dict[tuple[str, IPAddress, int], bool]:
    published = store.get(ENDPOINT_HEALTH)
    return {} if published is None else dict(published)


async def test_publishes_all_endpoints_up_at_start(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(), service("dns", (C,), probe=None)))
    async with running(store, FakeProber()):
        assert health(store) == {("web", A, 80): True, ("web", B, 80): True, ("dns", C, 80): True}
        await trio.sleep(0.5)
        status = {(r.service, r.address): r for r in store.get(HEALTH_STATUS) or ()}
        assert status[("dns", C)].probe is ProbeType.NONE and status[("dns", C)].up
        assert status[("web", A)].probe is ProbeType.TCP and status[("web", A)].probe_port == 80


async def test_no_config_yet_then_config(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    prober = FakeProber()
    async with running(store, prober):
        await trio.sleep(5)
        assert prober.calls == [] and store.get(ENDPOINT_HEALTH) is None
        store.publish(RUNNING_CONFIG, config(service()))
        await trio.sleep(5)
        assert {a for _, a, _, _ in prober.calls} == {A, B}


async def test_schedule_offset_and_jitter(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    addresses = tuple(ipaddress.ip_address(f"10.0.1.{i}") for i in range(1, 21))
    store.publish(RUNNING_CONFIG, config(service(endpoints=addresses)))
    prober = FakeProber()
    async with running(store, prober):
        start = trio.current_time()
        await trio.sleep(30)
    firsts = []
    for address in addresses:
        times = prober.times(address)
        assert 27 <= len(times) <= 34
        firsts.append(times[0] - start)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.9 - 1e-9 <= g <= 1.1 + 1e-9 for g in gaps)
        assert max(gaps) - min(gaps) > 0.01  # jittered, not a fixed period
    assert all(0 <= f < 1 for f in firsts)
    assert len({round(f, 6) for f in firsts}) == len(firsts)  # not synchronised


async def test_down_after_fall_and_up_after_rise(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service()))
    prober = FakeProber()
    key = ("web", A, 80)
    async with running(store, prober):
        await trio.sleep(3)
        prober.down.add(A)
        calls_before = len(prober.times(A))
        await wait_health(store, key, False)
        assert len(prober.times(A)) - calls_before == TCP.fall
        assert health(store)[("web", B, 80)] is True
        prober.down.discard(A)
        calls_before = len(prober.times(A))
        await wait_health(store, key, True)
        assert len(prober.times(A)) - calls_before == TCP.rise
        await trio.sleep(1)
        rows = {r.address: r for r in store.get(HEALTH_STATUS) or ()}
        assert rows[A].health is Health.UP and rows[A].last_ok is True


async def test_flapping_below_fall_never_goes_down(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(endpoints=(A,))))
    prober = FakeProber()
    flips = {"n": 0}

    def every_third_ok(address: IPAddress) -> None:  # fail, fail, ok, fail, fail, ok...
        flips["n"] += 1
        if flips["n"] % 3:
            prober.down.add(address)
        else:
            prober.down.discard(address)

    prober.behaviour = every_third_ok
    seen: list[bool] = []
    async with running(store, prober):
        for _ in range(40):
            await trio.sleep(0.5)
            seen.append(health(store)[("web", A, 80)])
    assert all(seen) and len(prober.calls) >= 15


async def test_failure_details_in_status(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(endpoints=(A,))))
    prober = FakeProber(latency=0.2, down={A})
    async with running(store, prober, status_interval=0.1):
        await wait_health(store, ("web", A, 80), False)
        await trio.sleep(0.2)
        (row,) = store.get(HEALTH_STATUS) or ()
    assert (row.up, row.health, row.last_ok, row.last_error) == (
        False,
        Health.DOWN,
        False,
        "refused",
    )
    assert row.failures == 3 and row.successes == 0 and row.latency_ms == pytest.approx(200)
    assert row.since is not None and row.checked_at is not None


async def test_bounded_concurrency(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    addresses = tuple(ipaddress.ip_address(f"10.0.2.{i}") for i in range(1, 31))
    probe = attrs.evolve(TCP, interval_ms=1000, timeout_ms=900)
    store.publish(RUNNING_CONFIG, config(service(endpoints=addresses, probe=probe)))
    prober = FakeProber(latency=0.8)
    async with running(store, prober, concurrency=4):
        await trio.sleep(20)
    assert prober.max_running == 4


async def test_hanging_and_raising_probes_fail(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(endpoints=(A, B))))
    prober = FakeProber()

    def misbehave(address: IPAddress) -> None:
        if address == B:
            raise ConnectionRefusedError(111, "refused")

    async def hang_on_a(address: IPAddress, port: int, probe: Probe) -> ProbeResult:
        if address == A:
            await trio.sleep_forever()
        return await prober(address, port, probe)

    prober.behaviour = misbehave
    svc = HealthService(store, probe=hang_on_a, rng=random.Random(1), status_interval=0.1)
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await wait_health(store, ("web", A, 80), False)
        await wait_health(store, ("web", B, 80), False)
        await trio.sleep(0.2)
        errors = {r.address: r.last_error for r in store.get(HEALTH_STATUS) or ()}
        nursery.cancel_scope.cancel()
    assert errors == {A: "timeout", B: "refused"}


async def test_follows_config_changes(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(endpoints=(A, B))))
    prober = FakeProber(down={B})
    async with running(store, prober):
        await wait_health(store, ("web", B, 80), False)
        # B removed, C added: B no longer probed nor published, C probed and up
        store.publish(RUNNING_CONFIG, config(service(endpoints=(A, C))))
        with trio.fail_after(1):  # virtual time: the service picks the change up at once
            while set(health(store)) != {("web", A, 80), ("web", C, 80)}:
                await trio.sleep(0.001)
        mark = trio.current_time()
        await trio.sleep(5)
        assert [t for t in prober.times(B) if t > mark] == []
        assert len([t for t in prober.times(C) if t > mark]) >= 4
        # a changed check: the new probe is used at once
        http = Probe(ProbeType.HTTP, port=8080, interval_ms=1000, timeout_ms=500)
        store.publish(RUNNING_CONFIG, config(service(endpoints=(A, C), probe=http)))
        mark = trio.current_time()
        await trio.sleep(3)
        assert {p.type for t, _, _, p in prober.calls if t > mark} == {ProbeType.HTTP}
        assert {port for t, _, port, _ in prober.calls if t > mark} == {80}
        # probe removed: endpoints unprobed and always up
        store.publish(RUNNING_CONFIG, config(service(endpoints=(A, C), probe=None)))
        mark = trio.current_time()
        await trio.sleep(3)
        assert [c for c in prober.calls if c[0] > mark] == []
        assert health(store) == {("web", A, 80): True, ("web", C, 80): True}


async def test_changed_probe_keeps_down_verdict(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(endpoints=(A,))))
    prober = FakeProber(down={A})
    key = ("web", A, 80)
    async with running(store, prober, status_interval=0.1):
        await wait_health(store, key, False)
        # new timing only: state and counts kept, new interval used
        slower = attrs.evolve(TCP, interval_ms=4000, rise=1)
        store.publish(RUNNING_CONFIG, config(service(endpoints=(A,), probe=slower)))
        await trio.sleep(5)
        assert health(store)[key] is False
        gaps = [b - a for a, b in itertools.pairwise(prober.times(A)[-3:])]
        assert gaps and all(g > 3 for g in gaps[-1:])
        # another check: still down until the new probe's results say otherwise
        icmp = Probe(ProbeType.ICMP, interval_ms=1000, timeout_ms=500, rise=2, fall=3)
        store.publish(RUNNING_CONFIG, config(service(endpoints=(A,), probe=icmp)))
        await trio.sleep(0)
        assert health(store)[key] is False
        prober.down.clear()
        await wait_health(store, key, True)


async def test_shared_endpoint_probed_per_service(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    http = Probe(ProbeType.HTTP, interval_ms=1000, timeout_ms=500, rise=1, fall=1)
    store.publish(
        RUNNING_CONFIG,
        config(service("web", (A,), probe=http), service("raw", (A,), probe=TCP)),
    )
    prober = FakeProber()
    async with running(store, prober):
        await trio.sleep(5)
        kinds = [p.type for _, a, _, p in prober.calls if a == A]
        assert kinds.count(ProbeType.HTTP) >= 4 and kinds.count(ProbeType.TCP) >= 4
        prober.down.add(A)
        await wait_health(store, ("web", A, 80), False)
        assert health(store)[("raw", A, 80)] is True  # its fall=3 is not reached yet
        await wait_health(store, ("raw", A, 80), False)


async def test_restart_keeps_verdicts(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, config(service(endpoints=(A,))))
    prober = FakeProber(down={A})
    svc = HealthService(store, probe=prober, rng=random.Random(3))
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        await wait_health(store, ("web", A, 80), False)
        nursery.cancel_scope.cancel()
    prober.down.clear()
    async with trio.open_nursery() as nursery:
        await nursery.start(svc.run)
        assert health(store)[("web", A, 80)] is False
        calls = len(prober.calls)
        await wait_health(store, ("web", A, 80), True)
        assert len(prober.calls) - calls == TCP.rise
        nursery.cancel_scope.cancel()


def test_probe_targets_effective_probe() -> None:
    own = Probe(ProbeType.ICMP)
    cfg = config(
        Service(
            name="s",
            port=80,
            vip=ipaddress.ip_address("198.51.100.1"),
            endpoints=(Endpoint(A, 81), Endpoint(B, 82, probe=own), Endpoint(C, 83)),
            probe=TCP,
        ),
        service("n", (A,), probe=Probe(ProbeType.NONE)),
    )
    assert probe_targets(cfg) == {
        ("s", A, 81): TCP,
        ("s", B, 82): own,
        ("s", C, 83): TCP,
        ("n", A, 80): None,
    }


def test_rejects_bad_jitter() -> None:
    with pytest.raises(ValueError):
        HealthService(StateStore(), jitter=1.0)
