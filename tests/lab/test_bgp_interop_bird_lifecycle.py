"""The native BGP speaker against BIRD 2: stopping, restarting and shutting sessions down, and
receiving routes.

Covered: graceful restart (BIRD as helper keeps the routes of a node that went away without a
NOTIFICATION), a stop without graceful restart (routes withdrawn, administrative shutdown), the
RFC 9003 shutdown communication, and routes BIRD exports to the node: received but refused
without an import policy (RFC 8212), accepted with one, installed in the kernel on request.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.lab.support.bird_configs import Bird, neighbor, one_route, router_config
from tests.lab.support.interop import Interop
from tests.lab.support.nodes import (
    ACTIVE,
    KERNEL_PROTO,
    NODE1,
    ROUTER,
    SCENARIO2,
    VIP,
    BgpNode,
    ConfigDoc,
    example_config,
    kernel_routes,
    route_gateways,
    router_kernel_route,
    write_config,
)
from tests.lab.support.polling import holds_for, wait_for

pytestmark = [
    pytest.mark.lab,
]

#: What the router's BIRD exports to the node in the import tests.
EXPORTED = ("10.99.1.0/24", "10.99.2.0/24", "10.98.0.0/24")
IMPORT_FILTER = [{"prefix": "10.99.0.0/16", "le": 24}]  # takes the 10.99 ones only


def node1_config(graceful_restart: bool = True) -> ConfigDoc:
    doc = example_config(SCENARIO2, "node1")
    doc["bgp"]["graceful_restart"] = {"enabled": graceful_restart}
    return doc


def start_node1(env: Interop, doc: ConfigDoc) -> BgpNode:
    return env.nodes.start("node1", write_config(env.workdir, "node1", doc), ACTIVE)


# --- 6. graceful restart --------------------------------------------------------------------------


def test_graceful_restart_keeps_the_route_while_the_node_restarts(env: Interop) -> None:
    # "aware" is BIRD 2's default: the helper (receiving) role of RFC 4724 only
    bird = env.bird(router_config(neighbor("node1", graceful_restart="aware")))
    node = start_node1(env, node1_config(graceful_restart=True))
    node.wait_established(ROUTER)
    described = bird.wait_state("node1")
    assert "Restart time: 30" in described  # the speaker's capability, as BIRD received it
    (before,) = bird.wait_routes(VIP, one_route, "the VIP from node1")

    pid = node.pid
    assert pid is not None
    node.stop()  # SIGTERM: the speaker closes its sessions without a NOTIFICATION
    assert node.stopped_cleanly(pid)
    described = bird.wait_protocol(
        "node1",
        lambda text: "Neighbor graceful restart active" in text,
        "BIRD helping node1 through its restart",
    )
    assert "Established" not in described
    (kept,) = bird.routes(VIP)  # still there while the node is away (stale inside BIRD)
    assert kept.via == (NODE1,) and kept.med == 10
    assert route_gateways(router_kernel_route(env.lab, VIP)) == {NODE1}  # and forwarded

    node.start()
    node.wait_established(ROUTER)
    wait_for(
        lambda: (
            (text := bird.protocol("node1"))
            and "Established" in text
            and "graceful restart active" not in text
        ),
        "BIRD's restart help over (End-of-RIB received)",
        describe=lambda: bird.protocol("node1"),
    )
    (after,) = bird.routes(VIP)
    assert after.via == (NODE1,) and after.med == before.med and after.as_path == before.as_path


def stop_node_without_graceful_restart(env: Interop) -> tuple[Bird, BgpNode]:
    bird = env.bird(router_config(neighbor("node1")))
    node = start_node1(env, node1_config(graceful_restart=False))
    described = bird.wait_state("node1")
    assert "Graceful restart" not in described.split("Neighbor capabilities")[1]
    bird.wait_routes(VIP, one_route, "the VIP from node1")
    pid = node.pid
    assert pid is not None
    node.stop()
    assert node.stopped_cleanly(pid)
    return bird, node


def test_stop_without_graceful_restart_withdraws_the_route(env: Interop) -> None:
    bird, _ = stop_node_without_graceful_restart(env)
    bird.wait_routes(VIP, lambda rs: rs == [], "the VIP gone with node1")
    assert "graceful restart active" not in bird.protocol("node1")


def test_stop_without_graceful_restart_sends_administrative_shutdown(env: Interop) -> None:
    bird, _ = stop_node_without_graceful_restart(env)
    bird.wait_protocol("node1", lambda t: "Established" not in t, "the session over at BIRD")
    wait_for(
        lambda: "Received: Administrative shutdown" in bird.log(),
        "BIRD logging the administrative shutdown",
        timeout=3.0,
        describe=lambda: f"{bird.protocol('node1')}\n{bird.log()}",
    )


# --- 7. shutdown communication --------------------------------------------------------------------

COMMUNICATION = "maintenance window 42"


def shut_down_with_communication(env: Interop) -> tuple[Bird, BgpNode]:
    bird = env.bird(router_config(neighbor("node1")))
    node = start_node1(env, node1_config())
    node.wait_established(ROUTER)
    bird.wait_state("node1")
    node.control(shutdown=COMMUNICATION)
    wait_for(
        lambda: f'Received: Administrative shutdown: "{COMMUNICATION}"' in bird.log(),
        "BIRD logging the shutdown communication",
        describe=bird.log,
    )
    return bird, node


def test_shutdown_communication_reaches_bird(env: Interop) -> None:
    bird, node = shut_down_with_communication(env)
    # BIRD keeps the last communication in the protocol's description
    assert f"Message:        {COMMUNICATION}" in bird.protocol("node1")
    node.wait_neighbor(
        ROUTER,
        lambda n: "ADMINISTRATIVE_SHUTDOWN" in (n["last_error"] or ""),
        "the speaker reporting the shutdown it sent",
    )


def test_administrative_shutdown_keeps_the_session_down(env: Interop) -> None:
    bird, node = shut_down_with_communication(env)
    bird.wait_routes(VIP, lambda rs: rs == [], "the VIP withdrawn by the shutdown")
    # BIRD retries within about a second (error wait 1 s, connect delay 1 s)
    holds_for(
        lambda: (
            bird.bgp_state("node1") != "Established"
            and node.neighbor(ROUTER).get("established_count") == 1
        ),
        "node1's session stays down after its administrative shutdown",
        duration=5.0,
        describe=lambda: f"{bird.protocol('node1')}\n{node.log_tail()}",
    )


# --- 8. receiving routes (RFC 8212) ---------------------------------------------------------------


def exporting_bird(env: Interop) -> Bird:
    config = router_config(
        neighbor("node1", export="where source = RTS_STATIC"), static_routes=EXPORTED
    )
    return env.bird(config)


def test_received_routes_are_refused_without_import_policy(env: Interop) -> None:
    exporting_bird(env)
    doc = node1_config()
    assert doc["bgp"]["import"] == []  # the example accepts nothing
    node = start_node1(env, doc)
    status = node.wait_neighbor(
        ROUTER, lambda n: n["prefixes_received"] == len(EXPORTED), "BIRD's routes received"
    )
    assert status["prefixes_accepted"] == 0
    assert sorted(node.status()["received"]) == sorted(EXPORTED)
    assert node.status()["best"] == []


@pytest.mark.parametrize("install", [False, True], ids=["rib-only", "install_routes"])
def test_imported_routes_are_accepted_and_installed(env: Interop, install: bool) -> None:
    exporting_bird(env)
    doc = node1_config()
    doc["bgp"]["import"] = IMPORT_FILTER
    doc["bgp"]["install_routes"] = install
    node = start_node1(env, doc)
    accepted = sorted(p for p in EXPORTED if p.startswith("10.99."))
    status = node.wait_neighbor(
        ROUTER, lambda n: n["prefixes_accepted"] == len(accepted), "the 10.99 routes accepted"
    )
    assert status["prefixes_received"] == len(EXPORTED)
    assert sorted(node.status()["best"]) == accepted
    if not install:
        assert kernel_routes(env.lab, "node1", KERNEL_PROTO) == []
        return

    def installed() -> list[dict[str, Any]] | None:
        found = kernel_routes(env.lab, "node1", KERNEL_PROTO)
        return found if len(found) == len(accepted) else None

    routes = wait_for(installed, "the accepted routes in node1's kernel table")
    assert sorted(r["dst"] for r in routes) == accepted
    assert all(route_gateways(r) == {ROUTER} for r in routes)
