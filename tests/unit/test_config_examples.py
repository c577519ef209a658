"""The shipped examples validate, mean what the scenarios say, and round-trip through dump."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from appliance.config import (
    Config,
    NatMode,
    Selection,
    SocketAddress,
    dump_config,
    load_config,
    parse_config,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCENARIOS = (
    "scenario1-l2",
    "scenario2-bgp-active-backup",
    "scenario3-bgp-ecmp",
    "scenario4-ctsync",
)
FILES = [f"{scenario}-node{n}.yaml" for scenario in SCENARIOS for n in (1, 2)]
NODE_ADDRESS = {1: "192.168.80.252", 2: "192.168.80.253"}
ENDPOINTS = {ipaddress.ip_address(f"192.168.80.{host}") for host in (101, 102, 103)}


def load(name: str) -> Config:
    return load_config(EXAMPLES / name)


def test_every_example_file_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(FILES)


@pytest.mark.parametrize("name", FILES)
def test_example_validates_and_round_trips(name: str) -> None:
    cfg = load(name)
    assert parse_config(dump_config(cfg)) == cfg


@pytest.mark.parametrize("name", FILES)
def test_example_uses_the_lab_addressing(name: str) -> None:
    cfg = load(name)
    node_id = 1 if name.endswith("node1.yaml") else 2
    assert cfg.node.name == f"node{node_id}"
    assert cfg.node.id == node_id
    assert str(cfg.node.router_id) == NODE_ADDRESS[node_id]
    assert cfg.web.listen == SocketAddress(ipaddress.IPv4Address("127.0.0.1"), 8080)
    assert {s.name: s.port for s in cfg.services} == {"web": 80, "echo": 9000}
    for svc in cfg.services:
        assert {ep.address for ep in svc.endpoints} == ENDPOINTS
        assert {ep.port for ep in svc.endpoints} == {8080 if svc.name == "web" else 9000}
    text = (EXAMPLES / name).read_text()
    assert "192.0.2." not in text
    if cfg.bgp is not None:
        assert cfg.bgp.asn == 65100
        assert str(cfg.bgp.router_id) == NODE_ADDRESS[node_id]
        assert [(str(p.address), p.asn) for p in cfg.bgp.peers] == [("192.168.80.254", 65101)]


@pytest.mark.parametrize("n", [1, 2])
def test_scenario1_flat_l2_active_backup(n: int) -> None:
    cfg = load(f"scenario1-l2-node{n}.yaml")
    assert cfg.bgp is None and cfg.sync is None and cfg.ha is not None
    (group,) = cfg.ha.groups
    assert (group.id, group.interface) == (1, "eth0")
    assert group.vips == (ipaddress.ip_address("192.168.80.200"),)
    assert group.priority == (150 if n == 1 else 100)
    assert all(s.mode is NatMode.ONEARM for s in cfg.services)
    assert {s.vip for s in cfg.services} == {ipaddress.ip_address("192.168.80.200")}


@pytest.mark.parametrize("n", [1, 2])
def test_scenario2_bgp_active_backup(n: int) -> None:
    cfg = load(f"scenario2-bgp-active-backup-node{n}.yaml")
    assert cfg.ha is not None and cfg.bgp is not None
    assert cfg.ha.groups[0].vips == (ipaddress.ip_address("198.51.100.10"),)
    active, backup = cfg.bgp.advertise.active, cfg.bgp.advertise.backup
    assert (active.med, active.prepend, backup.med, backup.prepend) == (10, 0, 20, 3)
    assert [str(p.cidr) for p in cfg.vip_pools] == ["198.51.100.0/24"]
    assert all(s.mode is NatMode.DEFAULT for s in cfg.services)
    assert {s.vip for s in cfg.services} == {ipaddress.ip_address("198.51.100.10")}


@pytest.mark.parametrize("n", [1, 2])
def test_scenario3_active_active_ecmp(n: int) -> None:
    cfg = load(f"scenario3-bgp-ecmp-node{n}.yaml")
    assert cfg.ha is None and cfg.bgp is not None
    assert all(s.selection is Selection.MAGLEV for s in cfg.services)
    # replies must return to the node that took the flow, whichever node the router chose
    assert all(s.mode is NatMode.ONEARM for s in cfg.services)


def test_scenario3_nodes_advertise_identically() -> None:
    one, two = load("scenario3-bgp-ecmp-node1.yaml"), load("scenario3-bgp-ecmp-node2.yaml")
    assert one.bgp is not None and two.bgp is not None
    assert one.bgp.advertise == two.bgp.advertise
    assert one.bgp.advertise.active == one.bgp.advertise.backup
    assert one.services == two.services


@pytest.mark.parametrize("n", [1, 2])
def test_scenario4_connection_sync(n: int) -> None:
    cfg = load(f"scenario4-ctsync-node{n}.yaml")
    other = 3 - n
    assert cfg.ha is not None and cfg.sync is not None
    assert all(s.mode is NatMode.FULLNAT for s in cfg.services)
    assert cfg.sync.listen == SocketAddress.parse(f"{NODE_ADDRESS[n]}:7946")
    assert cfg.sync.peers == (SocketAddress.parse(f"{NODE_ADDRESS[other]}:7946"),)
    assert cfg.sync.key_file == EXAMPLES / "secrets" / "sync.key"
    assert cfg.web.token_file == EXAMPLES / "secrets" / "web.token"
    floating = {s.source for s in cfg.services}
    assert len(floating) == 1 and floating <= set(cfg.ha.groups[0].vips)


def test_example_secrets_exist_and_have_no_comments() -> None:
    for name in ("ha.key", "sync.key", "web.token"):
        content = (EXAMPLES / "secrets" / name).read_text().strip()
        assert len(content) >= 32 and "#" not in content
    assert "lab" in (EXAMPLES / "secrets" / "README").read_text().lower()


def test_reference_example_in_the_readme_validates() -> None:
    doc = (EXAMPLES.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```yaml\n")[1:]]
    assert len(blocks) == 1
    cfg = parse_config(blocks[0], source="README.md", base_dir=EXAMPLES)
    assert parse_config(dump_config(cfg)) == cfg
    assert cfg.ha is not None and len(cfg.ha.groups[0].track) == 4
