"""BGP follows SIGHUP reloads against BIRD 2, touching only the peer that changed.

node1's daemon peers with the lab router twice: over IPv4 (BIRD protocol ``node1``, which
receives the VIP) and over IPv6 (``node1v6``); BIRD sends one static route on each. Then, by
editing the config file and reloading:

1. the IPv6 peer's hold time changes: that session alone is reset (BIRD receives Cease "Other
   configuration change" on it and negotiates the new hold time), the IPv4 one is untouched
   (BIRD's ``show protocols`` row, with the time of its last state change, is unchanged);
2. the IPv4 peer is removed: BIRD receives Cease "Peer de-configured", its session goes down,
   the VIP leaves BIRD and the router's IPv4 route leaves node1; the IPv6 session stays;
3. the IPv4 peer is added back: Established again, routes back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support.bgp_reload import (
    STATIC4,
    STATIC6,
    add_peer,
    best_prefixes,
    edit_peer,
    neighbors,
    protocol_line,
    received_notifications,
    reload,
    remove_peer,
    two_peer_config,
    wait_node,
)
from tests.lab.support.bird_configs import Bird, neighbor, router_config
from tests.lab.support.dataplane import start_daemon
from tests.lab.support.nodes import ROUTER, ROUTER6, VIP, add_cluster_ipv6
from tests.lab.support.polling import holds_for

pytestmark = pytest.mark.lab

EXPORT_STATIC = "where source = RTS_STATIC"


def start_bird(handle: LabHandle) -> Bird:
    config = router_config(
        neighbor("node1", export=EXPORT_STATIC),
        neighbor("node1", ipv6=True, export=EXPORT_STATIC),
        static_routes=(STATIC4, STATIC6),
    )
    return Bird(handle, config)


def received_since(bird: Bird, address: str) -> Callable[[], list[str]]:
    """The NOTIFICATIONs BIRD receives on ``address``'s session from now on (a probe)."""
    before = len(received_notifications(bird, address))
    return lambda: received_notifications(bird, address)[before:]


def test_reload_resets_only_the_changed_peer(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    # endpoints up: the VIP is advertised only while its service has a healthy endpoint
    handle = lab_factory("scenario3", start_router=False)
    add_cluster_ipv6(handle)
    bird = start_bird(handle)
    config = two_peer_config(tmp_path)
    pid = start_daemon(handle, config)

    bird.wait_state("node1")
    bird.wait_state("node1v6")
    bird.wait_routes(VIP, lambda found: len(found) == 1, "the VIP from node1")
    wait_node(handle, lambda: {STATIC4, STATIC6} <= best_prefixes(handle), "both routes in")

    # 1. the IPv6 peer's hold time: its session alone is reset
    ipv4_row = protocol_line(bird, ROUTER)
    seen4, seen6 = received_since(bird, ROUTER), received_since(bird, ROUTER6)
    edit_peer(config, ROUTER6, hold_time=12)
    assert reload(handle, pid)["error"] is None
    bird.wait_protocol(
        "node1v6",
        lambda text: "Established" in text and "/12" in text,  # "Hold timer: 8.4/12"
        "the IPv6 session re-established with hold time 12",
    )
    assert seen6()[:1] == ["Other configuration change"]
    wait_node(handle, lambda: neighbors(handle)[ROUTER6]["hold_time"] == 12, "hold time 12")
    assert protocol_line(bird, ROUTER) == ipv4_row
    assert seen4() == []
    assert neighbors(handle)[ROUTER]["established_count"] == 1

    # 2. the IPv4 peer removed: Cease "Peer de-configured", its routes leave both sides
    ipv6_row = protocol_line(bird, ROUTER6)
    seen4, seen6 = received_since(bird, ROUTER), received_since(bird, ROUTER6)
    removed = remove_peer(config, ROUTER)
    assert reload(handle, pid)["error"] is None
    bird.wait_protocol("node1", lambda text: "Established" not in text, "the IPv4 session down")
    assert seen4()[:1] == ["Peer de-configured"]
    bird.wait_routes(VIP, lambda found: found == [], "the VIP gone from BIRD")
    wait_node(handle, lambda: STATIC4 not in best_prefixes(handle), "the IPv4 route gone")
    assert ROUTER not in neighbors(handle)
    assert STATIC6 in best_prefixes(handle)
    assert protocol_line(bird, ROUTER6) == ipv6_row
    assert seen6() == []

    # 3. added back: Established again, routes back; the IPv6 session still untouched
    add_peer(config, removed)
    assert reload(handle, pid)["error"] is None
    bird.wait_state("node1")
    bird.wait_routes(VIP, lambda found: len(found) == 1, "the VIP back at BIRD")
    wait_node(handle, lambda: STATIC4 in best_prefixes(handle), "the IPv4 route back")
    assert neighbors(handle)[ROUTER]["state"] == "Established"
    holds_for(
        lambda: protocol_line(bird, ROUTER6) == ipv6_row,
        "the IPv6 session untouched",
        duration=1.0,
        describe=lambda: protocol_line(bird, ROUTER6),
    )
