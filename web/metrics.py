"""Prometheus metrics at /metrics: a collector over the state store, read at scrape time.

Nothing here counts: every value is one that a service already publishes in the state store
(BGP neighbours, HA groups, the dataplane status with its counters and connection count, probe
results, conntrack sync, event-loop lag, the supervisor's services, the config generation).

A scrape takes the store's snapshot on the event loop (a dict copy: the values are immutable)
and builds and formats the families from it in a worker thread: the loop pays for the copy
only, however many services and endpoints there are. No map is read and no I/O done.

A value that is not published gives no series at all (a node without HA has no ``triolb_ha_*``),
never a zero that would read as a real measurement. `METRICS` lists every name with its type and
help text; the README's metrics table follows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Literal, TypeVar, cast

import attrs
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from appliance.config.values import IPAddress
from appliance.dataplane import DATAPLANE_STATUS
from appliance.ha.status import GroupStatus
from appliance.health.state import Health
from appliance.health.status import HEALTH_STATUS
from appliance.intent import HaRole
from appliance.keys import CONFIG_GENERATION, RELOADS, RUNNING_CONFIG
from appliance.looplag import LOOP_LAG
from appliance.state import StateKey, StateStore
from appliance.supervisor import ServiceState, ServiceStatus
from appliance.sync.channel import PeerState
from appliance.sync.status import SYNC_STATUS
from bgp.fsm import State as BgpState
from bgp.status import NeighborStatus

__all__ = ["METRICS", "StateCollector", "metrics_routes"]

Kind = Literal["gauge", "counter"]
T = TypeVar("T")

#: name -> (type, help). Counter names end in ``_total`` (the exposed sample's name).
METRICS: dict[str, tuple[Kind, str]] = {
    # node and daemon
    "triolb_node_info": ("gauge", "The node's name and id (always 1)."),
    "triolb_config_generation": ("gauge", "Generation of the running configuration."),
    "triolb_config_reloads_total": ("counter", "Successful configuration reloads."),
    "triolb_service_up": ("gauge", "1 while the daemon's service (supervisor name) is running."),
    "triolb_service_state": ("gauge", "The daemon's service's supervisor state (one-hot)."),
    "triolb_service_restarts_total": ("counter", "Restarts of the daemon's service."),
    "triolb_event_loop_lag_seconds": (
        "gauge",
        "How late the event loop wakes a sleeping task over a recent window, by quantile "
        "(quantile 1 is the maximum).",
    ),
    "triolb_event_loop_lag_samples": ("gauge", "Samples in the event-loop lag window."),
    # BGP
    "triolb_bgp_session_established": ("gauge", "1 while the BGP session is Established."),
    "triolb_bgp_session_state": ("gauge", "The BGP session's RFC 4271 state (one-hot)."),
    "triolb_bgp_session_establishments_total": (
        "counter",
        "Times the BGP session reached Established (a flap adds one).",
    ),
    "triolb_bgp_session_established_timestamp_seconds": (
        "gauge",
        "Unix time the BGP session last reached Established.",
    ),
    "triolb_bgp_prefixes_received": ("gauge", "Prefixes received from the neighbour."),
    "triolb_bgp_prefixes_accepted": ("gauge", "Received prefixes accepted by import policy."),
    "triolb_bgp_prefixes_advertised": ("gauge", "Prefixes advertised to the neighbour."),
    "triolb_bgp_updates_received_total": ("counter", "UPDATE messages received."),
    "triolb_bgp_updates_sent_total": ("counter", "UPDATE messages sent."),
    # HA
    "triolb_ha_role": ("gauge", "The node's role in the HA group (one-hot)."),
    "triolb_ha_priority": ("gauge", "Effective priority: configured plus tracking weights."),
    "triolb_ha_configured_priority": ("gauge", "Configured priority of the HA group."),
    "triolb_ha_transitions_total": ("counter", "Role transitions of the HA group."),
    "triolb_ha_adverts_received_total": ("counter", "Adverts accepted for the HA group."),
    "triolb_ha_adverts_sent_total": ("counter", "Adverts sent (one per destination)."),
    "triolb_ha_adverts_rejected_total": ("counter", "Adverts discarded, by reason."),
    # dataplane: services and endpoints
    "triolb_conntrack_entries": ("gauge", "Connections in the dataplane's table (last count)."),
    "triolb_dataplane_events_total": ("counter", "Connection events read from the dataplane."),
    "triolb_dataplane_events_dropped_total": (
        "counter",
        "Connection events dropped because a subscriber was behind.",
    ),
    "triolb_lb_service_packets_total": ("counter", "Packets the dataplane forwarded."),
    "triolb_lb_service_bytes_total": ("counter", "Bytes the dataplane forwarded."),
    "triolb_lb_service_connections_total": ("counter", "New connections the service took."),
    "triolb_lb_service_dropped_connections_total": (
        "counter",
        "New connections dropped: no endpoint to take them.",
    ),
    "triolb_endpoint_packets_total": ("counter", "Packets forwarded for the endpoint."),
    "triolb_endpoint_bytes_total": ("counter", "Bytes forwarded for the endpoint."),
    "triolb_endpoint_connections_total": ("counter", "New connections sent to the endpoint."),
    "triolb_endpoint_open_connections": ("gauge", "Open connections to the endpoint."),
    "triolb_endpoint_weight": ("gauge", "The endpoint's programmed weight."),
    "triolb_endpoint_draining": (
        "gauge",
        "1 while the endpoint is programmed draining: it keeps its connections, takes no new one.",
    ),
    # health probes
    "triolb_endpoint_up": ("gauge", "1 while the endpoint counts as healthy (unknown counts up)."),
    "triolb_endpoint_health": ("gauge", "The endpoint's probe verdict (one-hot)."),
    "triolb_endpoint_probe_latency_seconds": ("gauge", "Duration of the last probe."),
    # conntrack sync
    "triolb_sync_resynced": ("gauge", "1 once the bulk resync from the peers is complete."),
    "triolb_sync_captured_total": ("counter", "Local connection changes handed to sync."),
    "triolb_sync_applied_total": ("counter", "Received entries written to the dataplane."),
    "triolb_sync_deleted_total": ("counter", "Received deletions applied to the dataplane."),
    "triolb_sync_kept_local_total": ("counter", "Received entries kept as this node's own."),
    "triolb_sync_skipped_total": ("counter", "Entries that could not be taken or sent."),
    "triolb_sync_event_losses_total": ("counter", "Full pushes after lost connection events."),
    "triolb_sync_snapshots_sent_total": ("counter", "Full snapshots sent to peers."),
    "triolb_sync_peer_up": ("gauge", "1 while the sync peer is up."),
    "triolb_sync_peer_state": ("gauge", "The sync peer's state (one-hot)."),
    "triolb_sync_peer_lag_seconds": ("gauge", "Age of the oldest entry the peer has not acked."),
    "triolb_sync_peer_queue_depth": ("gauge", "Entries waiting to be framed for the peer."),
    "triolb_sync_peer_in_flight_frames": ("gauge", "Frames sent to the peer, not yet acked."),
    "triolb_sync_peer_retransmits_total": ("counter", "Frames retransmitted to the peer."),
    "triolb_sync_peer_entries_sent_total": ("counter", "Entries sent to the peer."),
    "triolb_sync_peer_entries_received_total": ("counter", "Entries received from the peer."),
    "triolb_sync_peer_frames_sent_total": ("counter", "Frames sent to the peer."),
    "triolb_sync_peer_frames_received_total": ("counter", "Frames received from the peer."),
    "triolb_sync_peer_resyncs_sent_total": ("counter", "Resyncs sent to the peer."),
    "triolb_sync_peer_resyncs_received_total": ("counter", "Resyncs received from the peer."),
    "triolb_sync_peer_overflows_total": ("counter", "Queue overflows towards the peer."),
    "triolb_sync_peer_rejected_total": ("counter", "Datagrams from the peer rejected, by reason."),
    "triolb_sync_peer_last_heard_age_seconds": ("gauge", "Seconds since the peer was last heard."),
}


class Families:
    """The metric families of one scrape, each created with its first sample (so a family
    nobody fed is not exposed), typed and documented from `METRICS`."""

    def __init__(self) -> None:
        self._families: dict[str, Metric] = {}

    def add(self, name: str, value: float, **labels: str) -> None:
        """One sample of the metric `name` (a `METRICS` key) with `labels`."""
        kind, doc = METRICS[name]
        family = self._families.get(name)
        if family is None:
            # a counter family is named without "_total", its samples with it
            family_name = name.removesuffix("_total") if kind == "counter" else name
            family = self._families[name] = Metric(family_name, doc, kind)
        family.add_sample(name, labels, float(value))

    def one_hot(
        self, name: str, label: str, current: str, choices: Iterable[str], **labels: str
    ) -> None:
        """A sample per choice: 1 for `current`, 0 for the others (label `label`)."""
        for choice in choices:
            self.add(name, 1.0 if choice == current else 0.0, **labels, **{label: str(choice)})

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


def socket_label(host: str | IPAddress, port: int) -> str:
    """``addr:port`` / ``[v6]:port``: the label of an endpoint or a sync peer (no address
    parsing: thousands of endpoints are labelled per scrape)."""
    text = str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


Values = Mapping[str, object]


def _get(values: Values, key: StateKey[T]) -> T | None:
    """The value published under `key` in the snapshot (typed by the key, as the store is)."""
    return cast("T | None", values.get(key.name))


def _under(values: Values, prefix: str, cls: type[T]) -> dict[str, T]:
    """The values of type `cls` under `prefix`, by key without the prefix."""
    return {
        k.removeprefix(prefix): v
        for k, v in values.items()
        if k.startswith(prefix) and isinstance(v, cls)
    }


# -- the collectors of each part ---------------------------------------------------------------


def add_daemon(out: Families, values: Values) -> None:
    """Node identity, config generation and reloads, supervisor services, event-loop lag."""
    cfg = _get(values, RUNNING_CONFIG)
    if cfg is not None:
        out.add("triolb_node_info", 1, node=cfg.node.name, node_id=str(cfg.node.id))
    generation = _get(values, CONFIG_GENERATION)
    if generation is not None:
        out.add("triolb_config_generation", generation)
    reloads = _get(values, RELOADS)
    if reloads is not None:
        out.add("triolb_config_reloads_total", reloads)
    for name, status in _under(values, "service/", ServiceStatus).items():
        out.add("triolb_service_up", status.state is ServiceState.RUNNING, service=name)
        out.one_hot("triolb_service_state", "state", status.state, ServiceState, service=name)
        out.add("triolb_service_restarts_total", status.restarts, service=name)
    lag = _get(values, LOOP_LAG)
    if lag is not None:
        for quantile, seconds in (("0.5", lag.p50_s), ("0.99", lag.p99_s), ("1", lag.max_s)):
            out.add("triolb_event_loop_lag_seconds", seconds, quantile=quantile)
        out.add("triolb_event_loop_lag_samples", lag.samples)


def add_bgp(out: Families, values: Values) -> None:
    """Per neighbour: session state, establishments, prefixes, updates."""
    states = [s.value for s in BgpState]
    for n in _under(values, "bgp/neighbor/", NeighborStatus).values():
        peer = str(n.address)
        out.add(
            "triolb_bgp_session_established", n.state == BgpState.ESTABLISHED.value, neighbor=peer
        )
        out.one_hot("triolb_bgp_session_state", "state", n.state, states, neighbor=peer)
        out.add("triolb_bgp_session_establishments_total", n.established_count, neighbor=peer)
        if n.established_at is not None:
            name = "triolb_bgp_session_established_timestamp_seconds"
            out.add(name, n.established_at, neighbor=peer)
        out.add("triolb_bgp_prefixes_received", n.prefixes_received, neighbor=peer)
        out.add("triolb_bgp_prefixes_accepted", n.prefixes_accepted, neighbor=peer)
        out.add("triolb_bgp_prefixes_advertised", n.prefixes_advertised, neighbor=peer)
        out.add("triolb_bgp_updates_received_total", n.updates_received, neighbor=peer)
        out.add("triolb_bgp_updates_sent_total", n.updates_sent, neighbor=peer)


def add_ha(out: Families, values: Values) -> None:
    """Per HA group: role, priorities, transitions, adverts."""
    for g in _under(values, "ha/", GroupStatus).values():
        group = str(g.id)
        out.one_hot("triolb_ha_role", "role", g.role, HaRole, group=group)
        out.add("triolb_ha_priority", g.priority, group=group)
        out.add("triolb_ha_configured_priority", g.configured_priority, group=group)
        out.add("triolb_ha_transitions_total", g.transitions, group=group)
        out.add("triolb_ha_adverts_received_total", g.received, group=group)
        out.add("triolb_ha_adverts_sent_total", g.sent, group=group)
        for reason, count in sorted(g.rejected.items()):
            out.add("triolb_ha_adverts_rejected_total", count, group=group, reason=reason)


def add_dataplane(out: Families, values: Values) -> None:
    """The dataplane status: connection count, events, per-service and per-endpoint counters."""
    status = _get(values, DATAPLANE_STATUS)
    if status is None:
        return
    out.add("triolb_conntrack_entries", status.connections)
    out.add("triolb_dataplane_events_total", status.events)
    out.add("triolb_dataplane_events_dropped_total", status.events_dropped)
    for s in status.services:
        labels = {"service": s.name, "vip": s.vip, "port": str(s.port), "protocol": s.protocol}
        out.add("triolb_lb_service_packets_total", s.packets, **labels)
        out.add("triolb_lb_service_bytes_total", s.bytes, **labels)
        out.add("triolb_lb_service_connections_total", s.conns, **labels)
        out.add("triolb_lb_service_dropped_connections_total", s.drops, **labels)
        for e in s.endpoints:
            ep = {"service": s.name, "endpoint": socket_label(e.address, e.port)}
            out.add("triolb_endpoint_packets_total", e.packets, **ep)
            out.add("triolb_endpoint_bytes_total", e.bytes, **ep)
            out.add("triolb_endpoint_connections_total", e.conns, **ep)
            out.add("triolb_endpoint_open_connections", e.open_conns, **ep)
            out.add("triolb_endpoint_weight", e.weight, **ep)
            out.add("triolb_endpoint_draining", e.state == "draining", **ep)


def add_health(out: Families, values: Values) -> None:
    """Per configured endpoint: up, the probe verdict, the last probe's latency."""
    for e in _get(values, HEALTH_STATUS) or ():
        ep = {"service": e.service, "endpoint": socket_label(e.address, e.port)}
        out.add("triolb_endpoint_up", e.up, **ep)
        out.one_hot("triolb_endpoint_health", "health", e.health, Health, **ep)
        if e.latency_ms is not None:
            out.add("triolb_endpoint_probe_latency_seconds", e.latency_ms / 1000, **ep)


def add_sync(out: Families, values: Values) -> None:
    """Conntrack sync: the node's counters and, per peer, state, lag, queue and counters."""
    status = _get(values, SYNC_STATUS)
    if status is None:
        return
    out.add("triolb_sync_resynced", status.resynced)
    out.add("triolb_sync_captured_total", status.captured)
    out.add("triolb_sync_applied_total", status.applied)
    out.add("triolb_sync_deleted_total", status.deleted)
    out.add("triolb_sync_kept_local_total", status.kept_local)
    for reason, count in sorted(status.skipped.items()):
        out.add("triolb_sync_skipped_total", count, reason=reason)
    out.add("triolb_sync_event_losses_total", status.event_losses)
    out.add("triolb_sync_snapshots_sent_total", status.snapshots_sent)
    for p in status.peers:
        peer = socket_label(*p.peer)
        out.add("triolb_sync_peer_up", p.state == PeerState.UP, peer=peer)
        out.one_hot("triolb_sync_peer_state", "state", p.state, PeerState, peer=peer)
        out.add("triolb_sync_peer_lag_seconds", p.lag_s, peer=peer)
        out.add("triolb_sync_peer_queue_depth", p.queue, peer=peer)
        out.add("triolb_sync_peer_in_flight_frames", p.in_flight, peer=peer)
        out.add("triolb_sync_peer_retransmits_total", p.retransmits, peer=peer)
        out.add("triolb_sync_peer_entries_sent_total", p.ops_sent, peer=peer)
        out.add("triolb_sync_peer_entries_received_total", p.ops_received, peer=peer)
        out.add("triolb_sync_peer_frames_sent_total", p.frames_sent, peer=peer)
        out.add("triolb_sync_peer_frames_received_total", p.frames_received, peer=peer)
        out.add("triolb_sync_peer_resyncs_sent_total", p.resyncs_sent, peer=peer)
        out.add("triolb_sync_peer_resyncs_received_total", p.resyncs_received, peer=peer)
        out.add("triolb_sync_peer_overflows_total", p.overflows, peer=peer)
        for reason, count in sorted(p.rejected.items()):
            out.add("triolb_sync_peer_rejected_total", count, peer=peer, reason=reason)
        if p.last_heard_s is not None:
            out.add("triolb_sync_peer_last_heard_age_seconds", p.last_heard_s, peer=peer)


PARTS = (add_daemon, add_bgp, add_ha, add_dataplane, add_health, add_sync)


@attrs.frozen
class StateCollector:
    """prometheus_client's `Collector` over the values of a state store at one moment."""

    values: Values

    @classmethod
    def now(cls, store: StateStore) -> StateCollector:
        """The store's values now: a copy, cheap, on the event loop (the store is not
        thread-safe; its values are immutable, so the copy can be read in any thread)."""
        return cls(store.snapshot())

    def collect(self) -> Iterator[Metric]:
        out = Families()
        for part in PARTS:
            part(out, self.values)
        return iter(out)


def metrics_routes(store: StateStore) -> list[Route]:
    """GET /metrics: the text exposition format (no token: it carries no secret)."""

    async def metrics(request: Request) -> Response:
        collector = StateCollector.now(store)
        body = await trio.to_thread.run_sync(generate_latest, collector)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", metrics)]
