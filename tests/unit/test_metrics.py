"""GET /metrics (`web/metrics.py`) in-process: a store holding what each service publishes,
scraped through the ASGI app and read back with prometheus_client's own parser.

Every published value shows up under its documented name, labels and value; a value that is not
published gives no series (no zero pretending to be a measurement).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import attrs
import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from appliance.config import parse_config
from appliance.config.model import ProbeType
from appliance.config.values import IPAddress
from appliance.dataplane import DATAPLANE_STATUS, DataplaneStatus
from appliance.ha.status import GroupStatus, group_status_key
from appliance.health.state import Health
from appliance.health.status import HEALTH_STATUS
from appliance.health.status import EndpointStatus as ProbeStatus
from appliance.intent import HaRole
from appliance.keys import CONFIG_GENERATION, RELOADS, RUNNING_CONFIG
from appliance.looplag import LOOP_LAG, LoopLag
from appliance.state import StateStore
from appliance.supervisor import ServiceState, ServiceStatus, service_key
from appliance.sync.status import SYNC_STATUS
from bgp.status import NeighborStatus, neighbor_key
from bpf.programmer import EndpointStatus
from bpf.programmer import ServiceStatus as DpServiceStatus
from web.app import create_app
from web.metrics import METRICS

from . import sync_samples

EXAMPLE = Path(__file__).parents[2] / "examples" / "scenario3-bgp-ecmp-node1.yaml"
ROUTER = ipaddress.ip_address("192.168.80.254")
SPARE = ipaddress.ip_address("192.168.80.250")
EP1 = ipaddress.ip_address("192.168.80.101")
EP2 = ipaddress.ip_address("192.168.80.102")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def neighbor(address: IPAddress, state: str, **counts: int) -> NeighborStatus:
    established = state == "Established"
    return NeighborStatus(
        address=address,
        asn=65101,
        description="lab router (BIRD)",
        state=state,
        established_at=1_700_000_000.5 if established else None,
        established_count=counts.get("established_count", 0),
        prefixes_received=counts.get("received", 0),
        prefixes_accepted=counts.get("accepted", 0),
        prefixes_advertised=counts.get("advertised", 0),
        updates_received=counts.get("updates_received", 0),
        updates_sent=counts.get("updates_sent", 0),
        last_error=None,
    )


GROUP = GroupStatus(
    id=7,
    interface="eth0",
    state="MASTER",
    role=HaRole.ACTIVE,
    priority=140,
    configured_priority=150,
    master_address=ipaddress.ip_address("192.168.80.252"),
    vips=(ipaddress.ip_address("192.168.80.200"),),
    transitions=3,
    last_reason="higher priority",
    rejected={"auth-forged": 2, "bad-ttl": 1},
    received=40,
    sent=120,
)


def endpoint(address: str, index: int, packets: int, state: str = "active") -> EndpointStatus:
    return EndpointStatus(
        address=address,
        port=8080,
        index=index,
        weight=1 + index,
        state=state,
        open_conns=index + 2,
        packets=packets,
        bytes=packets * 100,
        conns=packets // 10,
        drops=0,
    )


DATAPLANE = DataplaneStatus(
    node="node1",
    adopted=False,
    layout_reset=False,
    attached=(("eth0", ("ingress",)),),
    services=(
        DpServiceStatus(
            name="web",
            vip="198.51.100.10",
            port=80,
            protocol="tcp",
            id=1,
            slot=0,
            endpoints=(
                endpoint("192.168.80.101", 0, 30),
                endpoint("192.168.80.102", 1, 50, "draining"),
            ),
            packets=80,
            bytes=8_000,
            conns=8,
            drops=2,
        ),
    ),
    connections=17,
    events=25,
    events_dropped=1,
)

PROBES = (
    ProbeStatus(
        service="web",
        address=EP1,
        port=8080,
        probe=ProbeType.HTTP,
        probe_port=8080,
        up=True,
        health=Health.UP,
        last_ok=True,
        latency_ms=2.5,
        successes=4,
    ),
    ProbeStatus(
        service="web",
        address=EP2,
        port=8080,
        probe=ProbeType.HTTP,
        probe_port=8080,
        up=False,
        health=Health.DOWN,
        last_ok=False,
        last_error="refused",
        latency_ms=None,
        failures=3,
    ),
)

SYNC = attrs.evolve(sync_samples.STATUS, event_losses=1, snapshots_sent=2)


def populated() -> StateStore:
    """A store holding one value of each kind the collector reads."""
    store = StateStore()
    store.publish(RUNNING_CONFIG, parse_config(EXAMPLE.read_text(), str(EXAMPLE)))
    store.publish(CONFIG_GENERATION, 4)
    store.publish(RELOADS, 3)
    store.publish(service_key("bgp"), ServiceStatus(ServiceState.RUNNING, restarts=1))
    store.publish(service_key("sync"), ServiceStatus(ServiceState.BACKOFF, 2, "OSError: boom"))
    store.publish(LOOP_LAG, LoopLag(p50_s=0.001, p99_s=0.02, max_s=0.05, samples=600))
    established = dict(established_count=2, received=1, accepted=1, advertised=1)
    store.publish(neighbor_key(ROUTER), neighbor(ROUTER, "Established", **established))
    store.publish(neighbor_key(SPARE), neighbor(SPARE, "Active"))
    store.publish(group_status_key(GROUP.id), GROUP)
    store.publish(DATAPLANE_STATUS, DATAPLANE)
    store.publish(HEALTH_STATUS, PROBES)
    store.publish(SYNC_STATUS, SYNC)
    return store


async def scrape(store: StateStore) -> tuple[httpx.Response, Samples]:
    """GET /metrics through the app; the response and its samples parsed back."""
    transport = httpx.ASGITransport(app=create_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        kind, _ = METRICS[family.name + ("_total" if family.type == "counter" else "")]
        assert family.type == kind, family.name
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return response, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


async def test_daemon_metrics() -> None:
    response, samples = await scrape(populated())
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    assert value(samples, "triolb_node_info", node="node1", node_id="1") == 1
    assert value(samples, "triolb_config_generation") == 4
    assert value(samples, "triolb_config_reloads_total") == 3
    assert value(samples, "triolb_service_up", service="bgp") == 1
    assert value(samples, "triolb_service_up", service="sync") == 0
    assert value(samples, "triolb_service_restarts_total", service="sync") == 2
    states = {
        s: value(samples, "triolb_service_state", service="sync", state=s) for s in ServiceState
    }
    assert states == {s: float(s is ServiceState.BACKOFF) for s in ServiceState}
    lag = {q: value(samples, "triolb_event_loop_lag_seconds", quantile=q) for q in ("0.5", "0.99")}
    assert lag == {"0.5": 0.001, "0.99": 0.02}
    assert value(samples, "triolb_event_loop_lag_seconds", quantile="1") == 0.05
    assert value(samples, "triolb_event_loop_lag_samples") == 600


async def test_bgp_metrics() -> None:
    _, samples = await scrape(populated())
    up, down = str(ROUTER), str(SPARE)
    assert value(samples, "triolb_bgp_session_established", neighbor=up) == 1
    assert value(samples, "triolb_bgp_session_established", neighbor=down) == 0
    assert value(samples, "triolb_bgp_session_state", neighbor=down, state="Active") == 1
    assert value(samples, "triolb_bgp_session_state", neighbor=down, state="Established") == 0
    assert value(samples, "triolb_bgp_session_establishments_total", neighbor=up) == 2
    for kind in ("received", "accepted", "advertised"):
        assert value(samples, f"triolb_bgp_prefixes_{kind}", neighbor=up) == 1
    stamp = "triolb_bgp_session_established_timestamp_seconds"
    assert value(samples, stamp, neighbor=up) == 1_700_000_000.5
    # never established: no timestamp rather than a 1970 one
    assert (stamp, frozenset({("neighbor", down)})) not in samples


async def test_ha_metrics() -> None:
    _, samples = await scrape(populated())
    roles = {r: value(samples, "triolb_ha_role", group="7", role=r) for r in HaRole}
    assert roles == {r: float(r is HaRole.ACTIVE) for r in HaRole}
    assert value(samples, "triolb_ha_priority", group="7") == 140
    assert value(samples, "triolb_ha_configured_priority", group="7") == 150
    assert value(samples, "triolb_ha_transitions_total", group="7") == 3
    assert value(samples, "triolb_ha_adverts_sent_total", group="7") == 120
    rejected = "triolb_ha_adverts_rejected_total"
    assert value(samples, rejected, group="7", reason="auth-forged") == 2
    assert value(samples, rejected, group="7", reason="bad-ttl") == 1


async def test_service_and_endpoint_metrics() -> None:
    _, samples = await scrape(populated())
    service = {"service": "web", "vip": "198.51.100.10", "port": "80", "protocol": "tcp"}
    assert value(samples, "triolb_lb_service_packets_total", **service) == 80
    assert value(samples, "triolb_lb_service_bytes_total", **service) == 8_000
    assert value(samples, "triolb_lb_service_connections_total", **service) == 8
    assert value(samples, "triolb_lb_service_dropped_connections_total", **service) == 2
    ep1 = {"service": "web", "endpoint": "192.168.80.101:8080"}
    ep2 = {"service": "web", "endpoint": "192.168.80.102:8080"}
    assert value(samples, "triolb_endpoint_packets_total", **ep2) == 50
    assert value(samples, "triolb_endpoint_bytes_total", **ep2) == 5_000
    assert value(samples, "triolb_endpoint_connections_total", **ep1) == 3
    assert value(samples, "triolb_endpoint_open_connections", **ep2) == 3
    assert value(samples, "triolb_endpoint_weight", **ep2) == 2
    assert value(samples, "triolb_endpoint_draining", **ep1) == 0
    assert value(samples, "triolb_endpoint_draining", **ep2) == 1
    assert value(samples, "triolb_conntrack_entries") == 17
    assert value(samples, "triolb_dataplane_events_total") == 25
    assert value(samples, "triolb_dataplane_events_dropped_total") == 1
    # health, from the probe status
    assert value(samples, "triolb_endpoint_up", **ep1) == 1
    assert value(samples, "triolb_endpoint_up", **ep2) == 0
    assert value(samples, "triolb_endpoint_health", **ep2, health="down") == 1
    assert value(samples, "triolb_endpoint_health", **ep2, health="up") == 0
    assert value(samples, "triolb_endpoint_probe_latency_seconds", **ep1) == 0.0025
    # no result with a latency yet: no series
    assert ("triolb_endpoint_probe_latency_seconds", frozenset(ep2.items())) not in samples


async def test_sync_metrics() -> None:
    _, samples = await scrape(populated())
    peer = "192.168.80.253:7946"
    assert value(samples, "triolb_sync_resynced") == 1
    assert value(samples, "triolb_sync_captured_total") == 200
    assert value(samples, "triolb_sync_skipped_total", reason="unknown-service") == 5
    assert value(samples, "triolb_sync_peer_up", peer=peer) == 1
    assert value(samples, "triolb_sync_peer_state", peer=peer, state="down") == 0
    assert value(samples, "triolb_sync_peer_lag_seconds", peer=peer) == 0.0125
    assert value(samples, "triolb_sync_peer_queue_depth", peer=peer) == 4
    assert value(samples, "triolb_sync_peer_retransmits_total", peer=peer) == 1
    assert value(samples, "triolb_sync_peer_entries_sent_total", peer=peer) == 200
    assert value(samples, "triolb_sync_peer_entries_received_total", peer=peer) == 3
    assert value(samples, "triolb_sync_peer_rejected_total", peer=peer, reason="bad-mac") == 2
    assert value(samples, "triolb_sync_peer_last_heard_age_seconds", peer=peer) == 0.2


async def test_missing_state_gives_no_series() -> None:
    response, samples = await scrape(StateStore())
    assert samples == {}
    assert "triolb_" not in response.text  # no HELP/TYPE of empty families either

    store = StateStore()
    store.publish(DATAPLANE_STATUS, DATAPLANE)
    _, samples = await scrape(store)
    prefixes = {name.split("_")[1] for name in names(samples)}
    assert prefixes == {"lb", "endpoint", "conntrack", "dataplane"}
    # without probe results there is no health verdict to report
    health = ("triolb_endpoint_up", "triolb_endpoint_health", "triolb_endpoint_probe")
    assert not {n for n in names(samples) if n.startswith(health)}


async def test_scrape_follows_the_store() -> None:
    """Each scrape reads the values published at that moment."""
    store = populated()
    later = neighbor(ROUTER, "Idle", established_count=2)
    _, before = await scrape(store)
    store.publish(neighbor_key(ROUTER), later)
    store.remove(SYNC_STATUS)
    _, after = await scrape(store)
    assert value(before, "triolb_bgp_session_established", neighbor=str(ROUTER)) == 1
    assert value(after, "triolb_bgp_session_established", neighbor=str(ROUTER)) == 0
    assert not {n for n in names(after) if n.startswith("triolb_sync_")}
