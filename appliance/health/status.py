"""What the health service reads from the config and publishes (pure helpers, no trio).

* `probe_targets(config)`: every endpoint of every service, keyed by (service name, endpoint
  address, endpoint port), with the probe that applies (None: not probed, always up). An
  endpoint shared by two services is two targets: their probes may differ.
* `ENDPOINT_HEALTH` (in `appliance.controller`): key -> up, for the intent and the HA tracks.
* `HEALTH_STATUS` (``probes/status``): one `EndpointStatus` per endpoint, for the API and the
  dashboard. Its key is deliberately outside ``health/``: the intent controller recomputes on
  every ``health/`` change, and this value changes with every probe result.
"""

from __future__ import annotations

import attrs

from appliance.config.model import Config, Probe, ProbeType
from appliance.config.values import IPAddress
from appliance.state import StateKey

from .state import Health, HealthState

TargetKey = tuple[str, IPAddress, int]


@attrs.frozen
class EndpointStatus:
    service: str
    address: IPAddress
    port: int  # the endpoint's port (the key), not necessarily the probed one
    probe: ProbeType  # NONE: not probed, always up
    probe_port: int | None  # the port probed; None for icmp and unprobed endpoints
    up: bool
    health: Health
    last_ok: bool | None = None  # None: no result yet
    last_error: str | None = None
    latency_ms: float | None = None
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    since: float | None = None  # Unix time of the last change of `health`
    checked_at: float | None = None  # Unix time of the last result


HEALTH_STATUS = StateKey[tuple[EndpointStatus, ...]]("probes/status")


def probe_targets(config: Config) -> dict[TargetKey, Probe | None]:
    """Every endpoint's key and its effective probe; None for no probe or type ``none``."""
    out: dict[TargetKey, Probe | None] = {}
    for service in config.services:
        for endpoint in service.endpoints:
            probe = service.probe_for(endpoint)
            if probe is not None and probe.type is ProbeType.NONE:
                probe = None
            out[(service.name, endpoint.address, endpoint.port)] = probe
    return out


def probed_port(probe: Probe, endpoint_port: int) -> int | None:
    if not probe.type.uses_port:
        return None
    return probe.port if probe.port is not None else endpoint_port


def same_check(a: Probe, b: Probe) -> bool:
    """Whether two probes test the same thing (they may differ in timing and thresholds)."""
    return attrs.evolve(a, interval_ms=0, timeout_ms=0, rise=1, fall=1) == attrs.evolve(
        b, interval_ms=0, timeout_ms=0, rise=1, fall=1
    )


def unprobed_status(key: TargetKey) -> EndpointStatus:
    service, address, port = key
    return EndpointStatus(service, address, port, ProbeType.NONE, None, True, Health.UP)


def endpoint_status(key: TargetKey, probe: Probe, state: HealthState) -> EndpointStatus:
    service, address, port = key
    last = state.last
    latency = None if last is None or last.latency is None else round(last.latency * 1000, 3)
    return EndpointStatus(
        service=service,
        address=address,
        port=port,
        probe=probe.type,
        probe_port=probed_port(probe, port),
        up=state.up,
        health=state.health,
        last_ok=None if last is None else last.ok,
        last_error=None if last is None else last.error,
        latency_ms=latency,
        successes=state.successes,
        failures=state.failures,
        since=state.since,
        checked_at=state.checked_at,
    )
