"""Observations of tracked BGP peers, services and commands from the state store."""

from __future__ import annotations

import ipaddress

import attrs

from appliance.config.model import Config, Endpoint, Node, Service, Track, TrackType
from appliance.controller import ENDPOINT_HEALTH
from appliance.ha.commands import CommandCheck
from appliance.ha.observe import observe
from appliance.ha.tracking import evaluate
from appliance.state import StateStore
from bgp.status import NeighborStatus, neighbor_key

PEER = "192.168.80.254"
EP1 = Endpoint(ipaddress.IPv4Address("192.168.80.101"), 8080)
EP2 = Endpoint(ipaddress.IPv4Address("192.168.80.102"), 8080)
WEB = Service("web", 80, (EP1, EP2), vip=ipaddress.IPv4Address("198.51.100.10"))
CFG = Config(node=Node("n1", 1), services=(WEB,))
TRACKS = (
    Track(TrackType.BGP_PEER, PEER, weight=-50),
    Track(TrackType.SERVICE, "web", weight=-20),
    Track(TrackType.SERVICE, "gone", weight=-5),
    Track(TrackType.COMMAND, "true", weight=-7),
)


def _neighbor(state: str) -> NeighborStatus:
    fields = {f.name: None for f in attrs.fields(NeighborStatus)}
    fields.update(address=ipaddress.ip_address(PEER), state=state)
    return NeighborStatus(**fields)  # type: ignore[arg-type]


def _observe(store: StateStore, check: CommandCheck) -> dict[tuple[TrackType, str], object]:
    return dict(observe(TRACKS, interfaces={}, store=store, config=CFG, commands={"true": check}))


def test_nothing_known_yet_counts_as_down() -> None:
    store, check = StateStore(), CommandCheck("true", 1.0)
    seen = _observe(store, check)
    assert seen == {(TrackType.SERVICE, "web"): True, (TrackType.SERVICE, "gone"): False}
    assert evaluate(TRACKS, seen).delta == -50 - 5 - 7  # web has no health yet: healthy


def test_established_peer_healthy_service_and_passing_command_are_up() -> None:
    store, check = StateStore(), CommandCheck("true", 1.0)
    store.publish(neighbor_key(ipaddress.ip_address(PEER)), _neighbor("Established"))
    store.publish(ENDPOINT_HEALTH, {("web", EP1.address, EP1.port): False})
    check.status = 0
    result = evaluate(TRACKS, _observe(store, check))
    assert [t.name for t in result.down] == ["gone"]


def test_peer_not_established_all_endpoints_down_and_failing_command_are_down() -> None:
    store, check = StateStore(), CommandCheck("true", 1.0)
    store.publish(neighbor_key(ipaddress.ip_address(PEER)), _neighbor("Active"))
    store.publish(
        ENDPOINT_HEALTH,
        {("web", EP1.address, EP1.port): False, ("web", EP2.address, EP2.port): False},
    )
    check.status = 3
    assert evaluate(TRACKS, _observe(store, check)).delta == -50 - 20 - 5 - 7
