"""Each scenario's lab comes up as specified: namespaces, addresses, routes, endpoints, BIRD."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from appliance.lab.api import LabHandle, lab_up
from appliance.lab.scenarios import (
    ENDPOINT_ADDRESSES,
    ROUTER_CLIENT_ADDRESS,
    ROUTER_CLUSTER_ADDRESS,
    is_routed,
)
from tests.lab.conftest import dump_logs
from tests.lab.helpers import (
    default_routes,
    forwarded_datagrams,
    http_get,
    interface_addresses,
    route_get,
    sysctl,
)

pytestmark = pytest.mark.lab

SCENARIOS = ["scenario1", "scenario2-bgp-active-backup", "scenario3", "scenario4-ctsync"]


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario_lab(request: pytest.FixtureRequest) -> Iterator[LabHandle]:
    handle = lab_up(request.param)
    try:
        yield handle
    finally:
        dump_logs(handle)
        handle.down()


def test_namespaces_exist(scenario_lab: LabHandle) -> None:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    names = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    expected = {scenario_lab.ns(h.name) for h in scenario_lab.topology.hosts}
    expected.add(scenario_lab.ns("sw"))
    assert expected <= names
    assert all(ns.startswith(f"{scenario_lab.prefix}-") for ns in expected)
    hosts = {h.name for h in scenario_lab.topology.hosts}
    assert {"client", "node1", "node2", "ep1", "ep2", "ep3"} <= hosts
    assert ("router" in hosts) == is_routed(scenario_lab.scenario)


def test_addresses_as_specified(scenario_lab: LabHandle) -> None:
    expected = {
        "node1": {"eth0": "192.168.80.252/24"},
        "node2": {"eth0": "192.168.80.253/24"},
        "ep1": {"eth0": "192.168.80.101/24"},
        "ep2": {"eth0": "192.168.80.102/24"},
        "ep3": {"eth0": "192.168.80.103/24"},
    }
    if is_routed(scenario_lab.scenario):
        expected["client"] = {"eth0": "203.0.113.10/24"}
        expected["router"] = {"eth0": "203.0.113.1/24", "eth1": "192.168.80.254/24"}
    else:
        expected["client"] = {"eth0": "192.168.80.10/24"}
    for host, interfaces in expected.items():
        actual = interface_addresses(scenario_lab, host)
        assert actual["lo"] == {"127.0.0.1/8"}, host
        assert set(actual) == {"lo", *interfaces}, host
        for ifname, cidr in interfaces.items():
            assert actual[ifname] == {cidr}, f"{host}/{ifname}"


def test_routes_and_sysctls(scenario_lab: LabHandle) -> None:
    routed = is_routed(scenario_lab.scenario)
    for host in ("node1", "node2", "ep1", "ep2", "ep3"):
        defaults = default_routes(scenario_lab, host)
        if routed:
            assert [r.get("gateway") for r in defaults] == [ROUTER_CLUSTER_ADDRESS], host
        else:
            assert defaults == [], host
    client_defaults = [r.get("gateway") for r in default_routes(scenario_lab, "client")]
    assert client_defaults == ([ROUTER_CLIENT_ADDRESS] if routed else [])
    # No static route for the VIP pool anywhere: BGP brings it to the router later.
    for lab_host in scenario_lab.topology.hosts:
        routes = scenario_lab.exec(lab_host.name, ["ip", "-4", "route"], timeout=10, check=True)
        assert "198.51.100." not in routes.stdout, lab_host.name
    assert sysctl(scenario_lab, "node1", "net.ipv4.ip_forward") == "1"
    assert sysctl(scenario_lab, "node2", "net.ipv4.ip_forward") == "1"
    assert sysctl(scenario_lab, "ep1", "net.ipv4.ip_forward") == "0"
    if routed:
        assert sysctl(scenario_lab, "router", "net.ipv4.ip_forward") == "1"
        assert sysctl(scenario_lab, "router", "net.ipv4.fib_multipath_hash_policy") == "1"


def test_client_reaches_every_endpoint(scenario_lab: LabHandle) -> None:
    routed = is_routed(scenario_lab.scenario)
    forwarded_before = forwarded_datagrams(scenario_lab, "router") if routed else 0
    for name, address in ENDPOINT_ADDRESSES.items():
        path = route_get(scenario_lab, "client", address)
        if routed:
            assert path["gateway"] == ROUTER_CLIENT_ADDRESS and path["dev"] == "eth0"
        else:
            assert "gateway" not in path and path["dev"] == "eth0"
        assert http_get(scenario_lab, "client", f"http://{address}:8080/") == f"{name}\n"
    if routed:
        # Three TCP exchanges crossed the router: its forwarding counter moved accordingly.
        assert forwarded_datagrams(scenario_lab, "router") - forwarded_before >= 3 * 8


def test_bird_runs_in_router(scenario_lab: LabHandle) -> None:
    if not is_routed(scenario_lab.scenario):
        assert scenario_lab.state.bird_socket is None
        return
    status = scenario_lab.birdc("show status")
    assert f"Router ID is {ROUTER_CLUSTER_ADDRESS}" in status
    protocols = scenario_lab.birdc("show protocols")
    assert "node1" in protocols and "node2" in protocols
    neighbor = scenario_lab.birdc("show protocols all node1")
    assert "192.168.80.252" in neighbor and "65100" in neighbor
