"""Endpoint health probes: the pure rise/fall core (`state`), the probe executors (`probes`),
what is read and published (`status`) and the Trio service that schedules them (`service`)."""

from __future__ import annotations

from .probes import ProbeFunction, run_probe
from .service import HealthService
from .state import Health, HealthState, ProbeResult
from .status import HEALTH_STATUS, EndpointStatus, probe_targets

__all__ = [
    "HEALTH_STATUS",
    "EndpointStatus",
    "Health",
    "HealthService",
    "HealthState",
    "ProbeFunction",
    "ProbeResult",
    "probe_targets",
    "run_probe",
]
