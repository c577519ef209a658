"""The health service: probes every endpoint on its own schedule and publishes the verdicts.

One task per target (service, endpoint address, endpoint port) with a probe. The first probe
of a target runs after a random offset within its interval, each next one ``interval_ms``
later (start to start) times a random factor in [1 - jitter, 1 + jitter], so probes of many
endpoints never synchronise. At most ``concurrency`` probes run at once (a trio
`CapacityLimiter`); a probe is bounded by its ``timeout_ms`` (plus a small grace, should the
probe function overrun).

Config changes are followed as they are published: new targets start (unknown, counted up),
removed ones stop, a probe whose timing or thresholds changed keeps its state and counts, a
probe that now checks something else restarts its counts but keeps its up/down verdict.

Published: `ENDPOINT_HEALTH` (every configured endpoint -> up; unprobed ones True) at once on
each up/down change and config change; `HEALTH_STATUS` (details) at most every
``status_interval`` seconds while results arrive.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import attrs
import trio

from appliance.config.model import Config, Probe
from appliance.controller import ENDPOINT_HEALTH
from appliance.keys import CONFIG_GENERATION, RUNNING_CONFIG, Applied, applied_key
from appliance.state import StateStore
from appliance.structlog import get_logger

from .probes import ProbeFunction, describe_error, run_probe
from .state import HealthState, ProbeResult
from .status import (
    HEALTH_STATUS,
    EndpointStatus,
    TargetKey,
    endpoint_status,
    probe_targets,
    same_check,
    unprobed_status,
)

log = get_logger("health")

CONCURRENCY = 64
JITTER = 0.1
STATUS_INTERVAL = 0.25
PROBE_GRACE = 0.5  # seconds a probe function may overrun its timeout before it is cut off


@attrs.define(eq=False)
class _Target:
    key: TargetKey
    probe: Probe
    state: HealthState
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)


class HealthService:
    def __init__(
        self,
        store: StateStore,
        *,
        probe: ProbeFunction = run_probe,
        concurrency: int = CONCURRENCY,
        jitter: float = JITTER,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
        status_interval: float = STATUS_INTERVAL,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self._store = store
        self._probe = probe
        self._limiter = trio.CapacityLimiter(concurrency)
        self._jitter = jitter
        self._rng = rng or random.Random()
        self._wall = wall_clock
        self._status_interval = status_interval
        self._config: Config | None = None
        self._targets: dict[TargetKey, _Target] = {}
        self._restored: dict[TargetKey, HealthState] = {}  # verdicts kept over a restart
        self._unprobed: list[TargetKey] = []
        self._status_dirty = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        # run again (the supervisor restarting it): keep the verdicts, start the probes anew
        self._restored = {key: t.state for key, t in self._targets.items()}
        self._targets = {}
        self._config = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._publish_status)
                seen = self._store.version
                self._follow(nursery)
                task_status.started()
                while True:
                    seen = await self._store.wait_changed(seen)
                    self._follow(nursery)
        finally:
            self._status_dirty = trio.Event()

    # --- config ---------------------------------------------------------------------------

    def _follow(self, nursery: trio.Nursery) -> None:
        cfg = self._store.get(RUNNING_CONFIG)
        if cfg is not None and cfg is not self._config:
            self._retarget(nursery, cfg)
        generation = self._store.get(CONFIG_GENERATION)
        answered = self._store.get(applied_key("health"))
        if generation is not None and (answered is None or answered.generation != generation):
            self._store.publish(applied_key("health"), Applied(generation))

    def _retarget(self, nursery: trio.Nursery, cfg: Config) -> None:
        """Probe what ``cfg`` asks for: unchanged targets keep their state and their task."""
        self._config = cfg
        wanted = probe_targets(cfg)
        for key in [k for k, p in wanted.items() if p is None] + [
            k for k in self._targets if k not in wanted
        ]:
            target = self._targets.pop(key, None)
            if target is not None:
                target.scope.cancel()
        for key, probe in wanted.items():
            if probe is not None:
                self._want(nursery, key, probe)
        self._unprobed = [k for k, p in wanted.items() if p is None]
        self._restored.clear()  # verdicts of targets the new config no longer has
        log.info("health_config", probed=len(self._targets), unprobed=len(self._unprobed))
        self._publish_health()
        self._status_dirty.set()

    def _want(self, nursery: trio.Nursery, key: TargetKey, probe: Probe) -> None:
        target = self._targets.get(key)
        if target is not None and target.probe == probe:
            return
        if target is not None and same_check(target.probe, probe):
            target.probe = probe  # the running task picks up the new timing
            target.state = target.state.retuned(probe.rise, probe.fall, keep_counts=True)
            return
        if target is not None:
            target.scope.cancel()
            state = target.state.retuned(probe.rise, probe.fall, keep_counts=False)
        elif key in self._restored:
            state = self._restored.pop(key).retuned(probe.rise, probe.fall, keep_counts=False)
        else:
            state = HealthState.initial(probe.rise, probe.fall, self._wall())
        fresh = _Target(key, probe, state)
        self._targets[key] = fresh
        nursery.start_soon(self._probe_loop, fresh)

    # --- probing --------------------------------------------------------------------------

    def _period(self, probe: Probe) -> float:
        factor = 1 + self._rng.uniform(-self._jitter, self._jitter)
        return probe.interval_ms / 1000 * factor

    async def _probe_loop(self, target: _Target) -> None:
        with target.scope:
            await trio.sleep(self._rng.uniform(0, target.probe.interval_ms / 1000))
            while True:
                started = trio.current_time()
                async with self._limiter:
                    result = await self._probe_once(target)
                self._record(target, result)
                await trio.sleep_until(started + self._period(target.probe))

    async def _probe_once(self, target: _Target) -> ProbeResult:
        _service, address, port = target.key
        probe = target.probe
        start = trio.current_time()
        try:
            with trio.move_on_after(probe.timeout_ms / 1000 + PROBE_GRACE):
                return await self._probe(address, port, probe)
        except Exception as exc:  # a broken probe is a failed probe, not a dead service
            log.warning("health_probe_error", target=_name(target.key), error=repr(exc))
            return ProbeResult.failure(describe_error(exc), trio.current_time() - start)
        return ProbeResult.failure("timeout", trio.current_time() - start)

    def _record(self, target: _Target, result: ProbeResult) -> None:
        if self._targets.get(target.key) is not target:
            return  # replaced or removed while probing
        before = target.state
        target.state = before.record(result, self._wall())
        if target.state.health is not before.health:
            log.info(
                "health_changed",
                target=_name(target.key),
                probe=target.probe.type.value,
                health=target.state.health.value,
                error=result.error,
            )
        if target.state.up != before.up:
            self._publish_health()
        self._status_dirty.set()

    # --- publishing -----------------------------------------------------------------------

    def _publish_health(self) -> None:
        health = {key: True for key in self._unprobed}
        health.update({key: t.state.up for key, t in self._targets.items()})
        self._store.publish(ENDPOINT_HEALTH, health)

    def status(self) -> tuple[EndpointStatus, ...]:
        rows = [endpoint_status(k, t.probe, t.state) for k, t in self._targets.items()]
        rows += [unprobed_status(k) for k in self._unprobed]
        return tuple(sorted(rows, key=lambda r: (r.service, str(r.address), r.port)))

    async def _publish_status(self) -> None:
        while True:
            await self._status_dirty.wait()
            self._status_dirty = trio.Event()
            self._store.publish(HEALTH_STATUS, self.status())
            await trio.sleep(self._status_interval)


def _name(key: TargetKey) -> str:
    service, address, port = key
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{service}/{host}:{port}"
