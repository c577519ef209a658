"""Scenario topologies, topology validation and the generated BIRD config (no namespaces)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.lab.bird import bird_config_for, check_bird_conf, render_bird_conf
from appliance.lab.scenarios import (
    SCENARIO_NAMES,
    canonical_scenario,
    is_routed,
    scenario_topology,
)
from appliance.lab.topology import Host, HostRole, Link, Route, Switch, Topology, TopologyError

ALL_NAMES = [*SCENARIO_NAMES, *SCENARIO_NAMES.values()]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_scenario_name_has_a_topology(name: str) -> None:
    topology = scenario_topology(name)
    assert canonical_scenario(name) in SCENARIO_NAMES.values()
    assert topology.address_of("node1") == "192.168.80.252"
    assert topology.address_of("node2") == "192.168.80.253"
    assert [topology.address_of(f"ep{i}") for i in (1, 2, 3)] == [
        "192.168.80.101",
        "192.168.80.102",
        "192.168.80.103",
    ]
    for host in topology.hosts_with_role(HostRole.NODE):
        assert host.interfaces == ("eth0",)
        assert ("net.ipv4.ip_forward", "1") in host.sysctls
    for host in topology.hosts_with_role(HostRole.ENDPOINT):
        assert host.sysctls == ()


def test_unknown_scenario() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        canonical_scenario("scenario5")


def test_flat_l2_has_no_router() -> None:
    topology = scenario_topology("scenario1-l2")
    assert not is_routed("scenario1")
    assert [s.name for s in topology.switches] == ["lan"]
    assert topology.address_of("client") == "192.168.80.10"
    assert topology.hosts_with_role(HostRole.ROUTER) == ()
    assert all(h.routes == () for h in topology.hosts)


@pytest.mark.parametrize("name", ["scenario2", "scenario3", "scenario4"])
def test_routed_scenarios(name: str) -> None:
    topology = scenario_topology(name)
    assert is_routed(name)
    router = topology.host("router")
    assert router.interfaces == ("eth0", "eth1")
    assert topology.address_of("router", "eth0") == "203.0.113.1"
    assert topology.address_of("router", "eth1") == "192.168.80.254"
    assert topology.host("client").routes == (Route("default", "203.0.113.1"),)
    assert topology.address_of("client") == "203.0.113.10"
    for host in ("node1", "node2", "ep1", "ep2", "ep3"):
        assert topology.host(host).routes == (Route("default", "192.168.80.254"),)
    cidrs = [link.address for link in topology.links]
    assert not any(c.startswith(("198.51.100.", "192.0.2.")) for c in cidrs)


def _host(name: str, *ifnames: str) -> Host:
    return Host(name, HostRole.ENDPOINT, ifnames)


def test_topology_validation() -> None:
    sw = (Switch("s"),)
    ok = Topology((_host("a", "eth0"),), sw, (Link("a", "eth0", "s", "10.0.0.1/24"),))
    assert ok.links_of("a")[0].prefixlen == 24
    with pytest.raises(TopologyError, match="unknown host"):
        Topology((), sw, (Link("a", "eth0", "s", "10.0.0.1/24"),))
    with pytest.raises(TopologyError, match="unknown switch"):
        Topology((_host("a", "eth0"),), sw, (Link("a", "eth0", "t", "10.0.0.1/24"),))
    with pytest.raises(TopologyError, match="not wired"):
        Topology((_host("a", "eth0", "eth1"),), sw, (Link("a", "eth0", "s", "10.0.0.1/24"),))
    with pytest.raises(TopologyError, match="used twice"):
        Topology(
            (_host("a", "eth0"), _host("b", "eth0")),
            sw,
            (Link("a", "eth0", "s", "10.0.0.1/24"), Link("b", "eth0", "s", "10.0.0.1/24")),
        )
    with pytest.raises(TopologyError, match="reserved"):
        Topology((_host("sw", "eth0"),), sw, (Link("sw", "eth0", "s", "10.0.0.1/24"),))


def test_names_and_values_are_checked() -> None:
    with pytest.raises(TopologyError):
        Host("Bad-Name", HostRole.CLIENT, ())
    with pytest.raises(TopologyError):
        Switch("thisnameistoolong")
    with pytest.raises(TopologyError):
        Link("a", "an-interface-name-too-long", "s", "10.0.0.1/24")
    with pytest.raises(TopologyError):
        Link("a", "eth0", "s", "10.0.0.1")  # no prefix length
    with pytest.raises(TopologyError):
        Link("a", "eth0", "s", "10.0.0.1/24", mac="zz:00:00:00:00:00")
    with pytest.raises(TopologyError):
        Route("default", "not-an-ip")
    with pytest.raises(TopologyError, match="per-netns"):
        Host("a", HostRole.NODE, (), sysctls=(("kernel.panic", "1"),))
    with pytest.raises(TopologyError, match="per-netns"):
        Host("a", HostRole.NODE, (), sysctls=(("vm.swappiness", "1"),))


def test_bird_config(tmp_path: Path) -> None:
    config = bird_config_for(scenario_topology("scenario3"))
    assert config.router_id == "192.168.80.254" and config.local_as == 65101
    assert [(n.name, n.address, n.remote_as) for n in config.neighbors] == [
        ("node1", "192.168.80.252", 65100),
        ("node2", "192.168.80.253", 65100),
    ]
    text = render_bird_conf(config)
    assert "merge paths on" in text
    assert text.count("import all;") == 2 and text.count("export none;") == 2
    conf = tmp_path / "bird.conf"
    conf.write_text(text)
    check_bird_conf(conf)
    conf.write_text(text.replace("router id", "router idd"))
    with pytest.raises(ValueError, match="bird rejects"):
        check_bird_conf(conf)
