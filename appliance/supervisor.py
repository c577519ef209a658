"""Supervision of the daemon's services inside its one nursery.

Each service is an async callable taking `task_status`. The supervisor starts it with
`nursery.start` (so the daemon's start-up order is explicit), restarts it with exponential
back-off when it fails, never lets a failure cancel the siblings, and escalates when a
service fails more than `max_failures` times within `window` seconds: the service is marked
failed and, if it is critical, the escalation is raised to the daemon.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

import attrs
import trio

from .state import StateKey, StateStore
from .structlog import get_logger

log = get_logger("supervisor")


class ServiceFn(Protocol):
    def __call__(self, *, task_status: trio.TaskStatus[None]) -> Awaitable[None]: ...


class ServiceState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@attrs.frozen
class RestartPolicy:
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    multiplier: float = 2.0
    max_failures: int = 5
    window_s: float = 60.0

    def backoff(self, recent_failures: int) -> float:
        """Delay before the next start after `recent_failures` failures in the window."""
        exponent = max(0, recent_failures - 1)
        return min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**exponent)


@attrs.frozen
class ServiceSpec:
    name: str
    run: ServiceFn
    policy: RestartPolicy = RestartPolicy()
    #: An escalated critical service stops the daemon (systemd then restarts the process;
    #: the pinned dataplane keeps forwarding meanwhile). A non-critical one stays failed.
    critical: bool = False


@attrs.frozen
class ServiceStatus:
    state: ServiceState
    restarts: int = 0
    last_error: str | None = None
    since: float = 0.0


def service_key(name: str) -> StateKey[ServiceStatus]:
    return StateKey(f"service/{name}")


class ServiceEscalation(Exception):
    def __init__(self, name: str, failures: int, last_error: str | None) -> None:
        super().__init__(f"service {name!r} failed {failures} times in its window: {last_error}")
        self.name = name
        self.failures = failures
        self.last_error = last_error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _describe(exc.exceptions[0])
    return f"{type(exc).__name__}: {exc}"


class Supervisor:
    def __init__(
        self,
        nursery: trio.Nursery,
        store: StateStore,
        on_escalation: Callable[[ServiceEscalation], None] | None = None,
    ) -> None:
        self._nursery = nursery
        self._store = store
        self._on_escalation = on_escalation
        self._scopes: dict[str, trio.CancelScope] = {}
        self._ended: dict[str, trio.Event] = {}

    @property
    def names(self) -> list[str]:
        return list(self._scopes)

    def status(self, name: str) -> ServiceStatus | None:
        return self._store.get(service_key(name))

    async def start(self, spec: ServiceSpec) -> None:
        """Start a service and return once it reported started (after retries if need be).

        Raises ServiceEscalation if it never starts within its failure budget.
        """
        if spec.name in self._scopes:
            raise ValueError(f"service {spec.name!r} already supervised")
        self._scopes[spec.name] = trio.CancelScope()
        self._ended[spec.name] = trio.Event()
        await self._nursery.start(self._supervise, spec)

    def stop(self, name: str) -> None:
        """Cancel a service for good (no restart)."""
        self._scopes[name].cancel()

    async def remove(self, name: str) -> None:
        """Stop a service and wait until it has ended; its name may then be started again
        (a configuration section removed, or replaced by one that needs a fresh start)."""
        scope, ended = self._scopes.get(name), self._ended.get(name)
        if scope is None or ended is None:
            return
        scope.cancel()
        await ended.wait()
        del self._scopes[name], self._ended[name]

    def _publish(self, spec: ServiceSpec, status: ServiceStatus) -> None:
        self._store.publish(service_key(spec.name), status)

    async def _supervise(self, spec: ServiceSpec, *, task_status: trio.TaskStatus[None]) -> None:
        try:
            await self._supervise_loop(spec, task_status)
        finally:
            if self._scopes[spec.name].cancel_called:
                self._publish(spec, ServiceStatus(ServiceState.STOPPED, since=trio.current_time()))
            self._ended[spec.name].set()

    async def _supervise_loop(self, spec: ServiceSpec, task_status: trio.TaskStatus[None]) -> None:
        failures: deque[float] = deque()
        restarts = 0
        started_once = False
        last_error: str | None = None
        with self._scopes[spec.name]:
            while True:
                self._publish(
                    spec,
                    ServiceStatus(ServiceState.STARTING, restarts, last_error, trio.current_time()),
                )
                try:
                    async with trio.open_nursery() as inner:
                        await inner.start(spec.run)
                        self._publish(
                            spec,
                            ServiceStatus(
                                ServiceState.RUNNING, restarts, last_error, trio.current_time()
                            ),
                        )
                        log.info("service_running", service=spec.name, restarts=restarts)
                        if not started_once:
                            started_once = True
                            task_status.started()
                except Exception as exc:
                    last_error = _describe(exc)
                    log.error("service_failed", service=spec.name, error=last_error)
                else:
                    log.info("service_stopped", service=spec.name)
                    self._publish(
                        spec,
                        ServiceStatus(
                            ServiceState.STOPPED, restarts, last_error, trio.current_time()
                        ),
                    )
                    if not started_once:
                        task_status.started()
                    return
                now = trio.current_time()
                failures.append(now)
                while failures and failures[0] < now - spec.policy.window_s:
                    failures.popleft()
                if len(failures) > spec.policy.max_failures:
                    self._escalate(
                        spec, len(failures), restarts, last_error, started_once, task_status
                    )
                    return
                delay = spec.policy.backoff(len(failures))
                self._publish(spec, ServiceStatus(ServiceState.BACKOFF, restarts, last_error, now))
                log.info(
                    "service_backoff",
                    service=spec.name,
                    delay_s=round(delay, 3),
                    failures_in_window=len(failures),
                )
                await trio.sleep(delay)
                restarts += 1

    def _escalate(
        self,
        spec: ServiceSpec,
        failures: int,
        restarts: int,
        last_error: str | None,
        started_once: bool,
        task_status: trio.TaskStatus[None],
    ) -> None:
        self._publish(
            spec, ServiceStatus(ServiceState.FAILED, restarts, last_error, trio.current_time())
        )
        escalation = ServiceEscalation(spec.name, failures, last_error)
        log.error(
            "service_escalated",
            service=spec.name,
            failures=failures,
            critical=spec.critical,
            error=last_error,
        )
        if not started_once:
            raise escalation
        if spec.critical:
            if self._on_escalation is not None:
                self._on_escalation(escalation)
            else:
                raise escalation
