"""The native BGP speaker against BIRD 2: sessions and what BIRD makes of the adverts.

Each test runs the `bgp_node` harness (speaker + intent controller; roles from a control file)
in the lab's node namespaces and a BIRD of its own in the router namespace, inside one lab
shared by this module. Covered: 4-octet AS numbers, IPv6 sessions and VIPs, TCP-MD5, the
active/backup attributes deciding BIRD's best path, and ECMP over active-active nodes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import APPLIANCE_AS, ROUTER_AS
from tests.lab.support.bird_configs import (
    Bird,
    BirdRoute,
    neighbor,
    one_route,
    router_config,
    routes_via,
)
from tests.lab.support.interop import Interop
from tests.lab.support.nodes import (
    ACTIVE,
    APPLIANCE_AS4,
    BACKUP,
    NODE1,
    NODE2,
    NODE6,
    ROUTER,
    ROUTER6,
    ROUTER_AS4,
    SCENARIO2,
    SCENARIO3,
    VIP,
    VIP6,
    VIP6_ADDRESS,
    BgpNode,
    add_cluster_ipv6,
    example_config,
    ipv6_config,
    route_gateways,
    router_kernel_route,
    router_peer,
    set_asns,
    tcp_md5_failures,
    write_config,
    write_secret,
)
from tests.lab.support.polling import holds_for, wait_for

pytestmark = [
    pytest.mark.lab,
]


# --- 1. 4-octet AS numbers ------------------------------------------------------------------------


def test_four_octet_asns_session_and_as_path(env: Interop) -> None:
    bird = env.bird(router_config(neighbor("node1", remote_as=APPLIANCE_AS4), local_as=ROUTER_AS4))
    doc = set_asns(example_config(SCENARIO2, "node1"), APPLIANCE_AS4, ROUTER_AS4)
    node = env.nodes.start("node1", write_config(env.workdir, "node1", doc), ACTIVE)

    status = node.wait_established(ROUTER)
    assert status["four_octet_as"] is True
    assert status["peer_router_id"] == ROUTER
    described = bird.wait_state("node1")
    assert re.search(rf"Neighbor AS:\s+{APPLIANCE_AS4}\n", described)
    assert re.search(r"Session:\s+external AS4", described)

    (route,) = bird.wait_routes(VIP, one_route, "the VIP from node1")
    assert route.via == (NODE1,) and route.med == 10
    assert route.as_path == [APPLIANCE_AS4]  # the real AS, not AS_TRANS 23456

    node.control(roles=BACKUP)
    (route,) = bird.wait_routes(
        VIP, lambda rs: one_route(rs) and rs[0].med == 20, "the VIP with backup attributes"
    )
    assert route.as_path == [APPLIANCE_AS4] * 4


# --- 2. IPv6 --------------------------------------------------------------------------------------


def ipv6_bird(env: Interop) -> Bird:
    add_cluster_ipv6(env.lab, ("router", "node1"))
    return env.bird(router_config(neighbor("node1"), neighbor("node1", ipv6=True), kernel6=True))


def check_ipv6_vip(env: Interop, bird: Bird) -> None:
    bird.wait_state("node1v6")
    (route,) = bird.wait_routes(VIP6, one_route, "the IPv6 VIP", table="master6")
    assert route.protocol == "node1v6"
    assert route.via == (NODE6["node1"],)
    assert route.attributes["BGP.next_hop"] == NODE6["node1"]
    assert route.as_path == [APPLIANCE_AS] and route.med == 10
    kernel = wait_for(
        lambda: router_kernel_route(env.lab, VIP6_ADDRESS, "-6"), "the router's IPv6 VIP route"
    )
    assert route_gateways(kernel) == {NODE6["node1"]}


def test_ipv6_session_carries_ipv6_vip(env: Interop) -> None:
    bird = ipv6_bird(env)
    doc = ipv6_config(ROUTER_AS, with_ipv4_vip=False)
    node = env.nodes.start("node1", write_config(env.workdir, "node1", doc))

    status6 = node.wait_established(ROUTER6)
    assert status6["local_address"] == NODE6["node1"]
    check_ipv6_vip(env, bird)
    # the IPv4 session is up next to it and carries only IPv4 (nothing here)
    status4 = node.wait_established(ROUTER)
    assert status4["local_address"] == NODE1
    bird.wait_state("node1")
    node.wait_neighbor(ROUTER6, lambda n: n["prefixes_advertised"] == 1, "one IPv6 advert")
    assert node.neighbor(ROUTER)["prefixes_advertised"] == 0
    assert bird.routes(table="master4") == []


def test_dual_stack_node_advertises_both_families(env: Interop) -> None:
    bird = ipv6_bird(env)
    doc = ipv6_config(ROUTER_AS, with_ipv4_vip=True)
    node = env.nodes.start("node1", write_config(env.workdir, "node1", doc))

    node.wait_established(ROUTER)
    check_ipv6_vip(env, bird)
    (route,) = bird.wait_routes(VIP, one_route, "the IPv4 VIP on the IPv4 session")
    assert route.protocol == "node1" and route.via == (NODE1,)


# --- 3. TCP-MD5 -----------------------------------------------------------------------------------

SECRET = "lab-md5-secret"


def md5_node(env: Interop, password: str) -> BgpNode:
    doc = example_config(SCENARIO2, "node1")
    router_peer(doc)["password_file"] = write_secret(env.workdir, "router.md5", password)
    return env.nodes.start("node1", write_config(env.workdir, "node1", doc), ACTIVE)


def test_tcp_md5_matching_password_establishes(env: Interop) -> None:
    bird = env.bird(router_config(neighbor("node1", password=SECRET)))
    node = md5_node(env, SECRET)
    node.wait_established(ROUTER)
    bird.wait_state("node1")  # BIRD drops unsigned segments: the speaker signs
    (route,) = bird.wait_routes(VIP, one_route, "the VIP over the signed session")
    assert route.via == (NODE1,)


def test_tcp_md5_wrong_password_never_establishes(env: Interop) -> None:
    bird = env.bird(router_config(neighbor("node1", password=SECRET)))
    before = {host: tcp_md5_failures(env.lab, host) for host in ("node1", "router")}
    node = md5_node(env, "not-the-lab-secret")

    # evidence that both sides tried, and the kernels dropped each other's SYNs
    wait_for(
        lambda: all(tcp_md5_failures(env.lab, host) > n for host, n in before.items()),
        "segments with a bad MD5 signature dropped in node1 and in the router",
    )
    holds_for(
        lambda: (
            bird.bgp_state("node1") != "Established"
            and node.neighbor(ROUTER).get("state") != "Established"
        ),
        "no session with a wrong TCP-MD5 password",
        duration=2.0,
        describe=lambda: bird.protocol("node1"),
    )
    assert node.neighbor(ROUTER)["established_count"] == 0
    assert bird.routes(VIP) == []


def gtsm_node(env: Interop) -> BgpNode:
    doc = example_config(SCENARIO2, "node1")
    router_peer(doc)["ttl_security"] = True
    return env.nodes.start("node1", write_config(env.workdir, "node1", doc), ACTIVE)


def test_gtsm_on_both_sides_establishes(env: Interop) -> None:
    bird = env.bird(router_config(neighbor("node1", ttl_security=True)))
    node = gtsm_node(env)
    node.wait_established(ROUTER)
    bird.wait_state("node1")
    (route,) = bird.wait_routes(VIP, one_route, "the VIP over the GTSM session")
    assert route.via == (NODE1,)


def test_gtsm_drops_a_router_that_does_not_send_ttl_255(env: Interop) -> None:
    # BIRD without GTSM sends eBGP with TTL 1: the node's minimum TTL of 255 drops it
    bird = env.bird(router_config(neighbor("node1")))
    node = gtsm_node(env)
    holds_for(
        lambda: (
            bird.bgp_state("node1") != "Established"
            and node.neighbor(ROUTER).get("state") != "Established"
        ),
        "no session with a router that does not use GTSM",
        duration=4.0,
        describe=lambda: bird.protocol("node1"),
    )
    assert node.neighbor(ROUTER)["established_count"] == 0


# --- 4. the role decides BIRD's best path ---------------------------------------------------------


def start_pair(
    env: Interop, scenario: str, roles: dict[str, dict[int, str]] | None
) -> list[BgpNode]:
    nodes = []
    for host in ("node1", "node2"):
        config = write_config(env.workdir, host, example_config(scenario, host))
        nodes.append(env.nodes.start(host, config, roles[host] if roles else None))
    return nodes


def best_via(hop: str) -> Callable[[list[BirdRoute]], bool]:
    """Two paths, BIRD's best one via ``hop``."""
    return lambda rs: len(rs) == 2 and any(r.primary and hop in r.via for r in rs)


def wait_forwarding(handle: LabHandle, hops: set[str]) -> None:
    """Wait until the router's kernel sends the VIP to ``hops``."""
    wait_for(
        lambda: route_gateways(router_kernel_route(handle, VIP)) == hops,
        f"the router forwarding the VIP to {sorted(hops)}",
        describe=lambda: str(router_kernel_route(handle, VIP)),
    )


def check_best_path(env: Interop, bird: Bird, active: str, backup: str) -> None:
    """BIRD has both paths, the best (MED 10, no prepend) via ``active``, the other (MED 20,
    3 prepends) via ``backup``; the router's kernel forwards to ``active``."""
    found = bird.wait_routes(VIP, best_via(active), f"two paths, the best via {active}")
    (best,) = [r for r in found if r.primary]
    (other,) = routes_via(found, backup)
    assert best.via == (active,) and best.med == 10 and best.as_path == [APPLIANCE_AS]
    assert not other.primary and other.med == 20 and other.as_path == [APPLIANCE_AS] * 4
    wait_forwarding(env.lab, {active})


def test_role_flip_moves_the_best_path(env: Interop) -> None:
    bird = env.bird(router_config(neighbor("node1"), neighbor("node2")))
    node1, node2 = start_pair(env, SCENARIO2, {"node1": ACTIVE, "node2": BACKUP})
    check_best_path(env, bird, active=NODE1, backup=NODE2)

    node1.control(roles=BACKUP)
    node2.control(roles=ACTIVE)
    check_best_path(env, bird, active=NODE2, backup=NODE1)


# --- 5. active-active: ECMP -----------------------------------------------------------------------


def test_active_active_nodes_give_an_ecmp_route(env: Interop) -> None:
    bird = env.bird(router_config(neighbor("node1"), neighbor("node2")))
    start_pair(env, SCENARIO3, None)

    found = bird.wait_routes(VIP, lambda rs: len(rs) == 2, "the VIP from both nodes")
    assert {r.via for r in found} == {(NODE1,), (NODE2,)}
    assert {(r.med, tuple(r.as_path)) for r in found} == {(10, (APPLIANCE_AS,))}

    wait_forwarding(env.lab, {NODE1, NODE2})  # BIRD's merged paths: one multipath route
    route = router_kernel_route(env.lab, VIP)
    assert len(route["nexthops"]) == 2 and route["protocol"] == "bird"
