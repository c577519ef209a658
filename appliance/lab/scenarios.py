"""The four seed scenarios as lab topologies (addressing fixed by DESIGN.md; configs rely on it),
plus ``ha3``: scenario 1's flat L2 segment with a third node, for the HA election tests."""

from __future__ import annotations

from collections.abc import Mapping

from appliance.lab.topology import Host, HostRole, Link, Route, Switch, Topology

SCENARIO_NAMES: dict[str, str] = {
    "scenario1": "scenario1-l2",
    "scenario2": "scenario2-bgp-active-backup",
    "scenario3": "scenario3-bgp-ecmp",
    "scenario4": "scenario4-ctsync",
    "ha3": "ha3-l2-three-nodes",
}
#: The flat-L2 scenarios: no router, the client on the cluster segment.
FLAT_SCENARIOS = frozenset({SCENARIO_NAMES["scenario1"], SCENARIO_NAMES["ha3"]})

CLUSTER_PREFIXLEN = 24
NODE_ADDRESSES = {"node1": "192.168.80.252", "node2": "192.168.80.253"}
#: ``ha3``: node3 takes the next free address below node1's
HA3_NODE_ADDRESSES = {**NODE_ADDRESSES, "node3": "192.168.80.251"}
ENDPOINT_ADDRESSES = {"ep1": "192.168.80.101", "ep2": "192.168.80.102", "ep3": "192.168.80.103"}
ROUTER_CLUSTER_ADDRESS = "192.168.80.254"
ROUTER_CLIENT_ADDRESS = "203.0.113.1"
L2_CLIENT_ADDRESS = "192.168.80.10"
L3_CLIENT_ADDRESS = "203.0.113.10"
ENDPOINT_HTTP_PORT = 8080
ENDPOINT_ECHO_PORT = 9000
ROUTER_AS = 65101
APPLIANCE_AS = 65100

_FORWARDING = (("net.ipv4.ip_forward", "1"),)


def canonical_scenario(name: str) -> str:
    """``scenario2`` or ``scenario2-bgp-active-backup`` -> ``scenario2-bgp-active-backup``."""
    if name in SCENARIO_NAMES:
        return SCENARIO_NAMES[name]
    if name in SCENARIO_NAMES.values():
        return name
    known = ", ".join(sorted([*SCENARIO_NAMES, *SCENARIO_NAMES.values()]))
    raise ValueError(f"unknown scenario {name!r}; known: {known}")


def is_routed(name: str) -> bool:
    """True for the L3 scenarios (2-4), which have a router running BIRD."""
    return canonical_scenario(name) not in FLAT_SCENARIOS


def _cluster_members(
    switch: str, gateway: str | None, nodes: Mapping[str, str] = NODE_ADDRESSES
) -> tuple[list[Host], list[Link]]:
    routes = (Route("default", gateway),) if gateway else ()
    hosts: list[Host] = []
    links: list[Link] = []
    for name, ip in nodes.items():
        hosts.append(Host(name, HostRole.NODE, ("eth0",), routes, _FORWARDING))
        links.append(Link(name, "eth0", switch, f"{ip}/{CLUSTER_PREFIXLEN}"))
    for name, ip in ENDPOINT_ADDRESSES.items():
        hosts.append(Host(name, HostRole.ENDPOINT, ("eth0",), routes))
        links.append(Link(name, "eth0", switch, f"{ip}/{CLUSTER_PREFIXLEN}"))
    return hosts, links


def flat_l2_topology(nodes: Mapping[str, str] = NODE_ADDRESSES) -> Topology:
    """Scenario 1 (``ha3``: with ``HA3_NODE_ADDRESSES``): client, nodes and endpoints on one
    bridge, no router."""
    hosts, links = _cluster_members("lan", gateway=None, nodes=nodes)
    hosts.insert(0, Host("client", HostRole.CLIENT, ("eth0",)))
    links.insert(0, Link("client", "eth0", "lan", f"{L2_CLIENT_ADDRESS}/24"))
    return Topology(tuple(hosts), (Switch("lan"),), tuple(links))


def routed_topology() -> Topology:
    """Scenarios 2-4: client --(br-client)-- router --(br-cluster)-- nodes, endpoints."""
    hosts, links = _cluster_members("cluster", gateway=ROUTER_CLUSTER_ADDRESS)
    router = Host(
        "router",
        HostRole.ROUTER,
        ("eth0", "eth1"),
        (),
        # L4 hashing so that ECMP (scenario 3) spreads the flows of a single client.
        (*_FORWARDING, ("net.ipv4.fib_multipath_hash_policy", "1")),
    )
    client = Host("client", HostRole.CLIENT, ("eth0",), (Route("default", ROUTER_CLIENT_ADDRESS),))
    hosts[0:0] = [client, router]
    links[0:0] = [
        Link("client", "eth0", "client", f"{L3_CLIENT_ADDRESS}/24"),
        Link("router", "eth0", "client", f"{ROUTER_CLIENT_ADDRESS}/24"),
        Link("router", "eth1", "cluster", f"{ROUTER_CLUSTER_ADDRESS}/{CLUSTER_PREFIXLEN}"),
    ]
    return Topology(tuple(hosts), (Switch("client"), Switch("cluster")), tuple(links))


def scenario_topology(name: str) -> Topology:
    """A scenario's topology, by short (``scenario3``) or long (``scenario3-bgp-ecmp``) name."""
    if is_routed(name):
        return routed_topology()
    if canonical_scenario(name) == SCENARIO_NAMES["ha3"]:
        return flat_l2_topology(HA3_NODE_ADDRESSES)
    return flat_l2_topology()
