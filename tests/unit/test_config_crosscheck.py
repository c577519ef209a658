"""Checks across fields and sections: uniqueness, references, address families, files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appliance.config import Config, ConfigError, parse_config

HEAD = """\
node: {name: n1, id: 1, router_id: 192.168.80.252}
vip_pools:
  - {name: lab, cidr: 198.51.100.0/24}
  - {name: lab6, cidr: "2001:db8:100::/64"}
"""


def issues(body: str, base_dir: Path | None = None) -> list[str]:
    """Errors of HEAD + ``body`` (dedented when it is an indented triple-quoted block)."""
    if body.startswith("    "):
        body = textwrap.dedent(body)
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + body, base_dir=base_dir)
    return [str(issue) for issue in info.value.errors]


def parse(body: str, base_dir: Path | None = None) -> Config:
    return parse_config(HEAD + textwrap.dedent(body), base_dir=base_dir)


def svc(name: str, where: str, port: int = 80, endpoint: str = "10.0.0.1", extra: str = "") -> str:
    return (
        f"  - {{name: {name}, {where}, port: {port}, {extra}"
        f'endpoints: [{{address: "{endpoint}"}}]}}\n'
    )


def test_service_names_are_unique() -> None:
    body = "services:\n" + svc("web", "vip: 198.51.100.10") + svc("web", "vip: 198.51.100.11")
    assert issues(body) == ["services[1].name (line 7): duplicate service name (also services[0])"]


def test_vip_port_protocol_is_unique() -> None:
    body = "services:\n" + svc("a", "vip: 198.51.100.10") + svc("b", "vip: 198.51.100.10")
    assert issues(body) == [
        "services[1].vip (line 7): services[0] already uses vip 198.51.100.10 port 80/tcp"
    ]


def test_same_vip_and_port_with_another_protocol_is_fine() -> None:
    body = (
        "services:\n"
        + svc("a", "vip: 198.51.100.10")
        + svc("b", "vip: 198.51.100.10", extra="protocol: udp, ")
        + svc("c", "vip: 198.51.100.10", port=81)
    )
    assert len(parse(body).services) == 3


def test_pool_port_protocol_is_unique() -> None:
    body = "services:\n" + svc("a", "pool: lab") + svc("b", "pool: lab")
    assert issues(body) == [
        "services[1].pool (line 7): services[0] already uses pool lab port 80/tcp"
    ]


def test_a_vip_inside_a_declared_pool_is_fine() -> None:
    body = "services:\n" + svc("a", "pool: lab") + svc("b", "vip: 198.51.100.10")
    cfg = parse(body)
    assert cfg.services[0].pool == "lab" and cfg.services[0].vip is None
    assert str(cfg.services[1].vip) == "198.51.100.10" and cfg.services[1].pool is None


def test_referenced_pool_must_exist() -> None:
    body = "services:\n" + svc("a", "pool: nope")
    assert issues(body) == ["services[0].pool (line 6): unknown pool 'nope' (vip_pools: lab, lab6)"]


def test_pool_names_are_unique_and_pools_do_not_overlap() -> None:
    body = "  - {name: lab, cidr: 198.51.100.128/25}\n"
    assert issues(body) == [
        "vip_pools[2].name (line 5): duplicate pool name (also vip_pools[0])",
        "vip_pools[2].cidr (line 5): overlaps vip_pools[0] (198.51.100.0/24)",
    ]


def test_endpoint_family_must_match_the_vip() -> None:
    body = "services:\n" + svc("a", "vip: 198.51.100.10", endpoint="2001:db8::1")
    assert issues(body) == [
        "services[0].endpoints[0].address (line 6): "
        "IPv6 endpoint for an IPv4 service (vip 198.51.100.10)"
    ]


def test_endpoint_family_must_match_the_pool() -> None:
    body = "services:\n" + svc("a", "pool: lab6", endpoint="10.0.0.1")
    assert issues(body) == [
        "services[0].endpoints[0].address (line 6): "
        "IPv4 endpoint for an IPv6 service (pool lab6 2001:db8:100::/64)"
    ]


def test_ipv6_service_with_ipv6_endpoints_is_fine() -> None:
    body = "services:\n" + svc("a", 'vip: "2001:db8:100::10"', endpoint="2001:db8::1")
    assert parse(body).services[0].endpoints[0].address.version == 6


def test_fullnat_source_family_must_match() -> None:
    extra = 'mode: fullnat, source: "2001:db8::5", '
    body = "services:\n" + svc("a", "vip: 198.51.100.10", extra=extra)
    assert issues(body) == [
        "services[0].source (line 6): IPv6 source for an IPv4 service (vip 198.51.100.10)"
    ]


def test_duplicate_endpoints_are_rejected() -> None:
    body = """\
        services:
          - name: a
            vip: 198.51.100.10
            port: 80
            endpoints:
              - {address: 10.0.0.1}
              - {address: 10.0.0.1, port: 80}
              - {address: 10.0.0.1, port: 8080}
        """
    assert issues(body) == [
        "services[0].endpoints[1].address (line 11): duplicate endpoint (also endpoints[0])"
    ]


WEB_SERVICE = "services:\n" + svc("web", "vip: 198.51.100.10")


def group(extra: str = "", gid: int = 1, vips: str = "[198.51.100.10]") -> str:
    return f"    - {{id: {gid}, interface: eth0, vips: {vips}{extra}}}\n"


def test_ha_group_ids_are_unique() -> None:
    body = "ha:\n  groups:\n" + group() + group(vips="[198.51.100.11]")
    assert issues(body) == ["ha.groups[1].id (line 8): duplicate group id (also ha.groups[0])"]


def test_ha_group_vips_are_one_family() -> None:
    body = "ha:\n  groups:\n" + group(vips='[198.51.100.10, "2001:db8::10"]')
    assert issues(body) == [
        "ha.groups[0].vips[1] (line 7): IPv6 vip in a group whose first vip is IPv4; "
        "use one group per address family"
    ]


def test_ha_unicast_peers_match_the_vip_family() -> None:
    body = "ha:\n  groups:\n" + group(', unicast_peers: ["2001:db8::2"]')
    assert issues(body) == ["ha.groups[0].unicast_peers[0] (line 7): IPv6 peer for IPv4 vips"]


def test_ha_group_pools_exist_match_the_family_and_belong_to_one_group() -> None:
    body = (
        "ha:\n  groups:\n"
        + group(", pools: [lab, lab6, nope]")
        + group(", pools: [lab]", gid=2, vips="[198.51.100.11]")
    )
    assert issues(body) == [
        "ha.groups[0].pools[1] (line 7): IPv6 pool lab6 in a group of IPv4 vips",
        "ha.groups[0].pools[2] (line 7): unknown pool 'nope' (vip_pools: lab, lab6)",
        "ha.groups[1].pools[0] (line 8): pool lab is already in a group (ha.groups[0])",
    ]
    ok = parse("ha:\n  groups:\n" + group(", pools: [lab]"))
    assert ok.ha is not None and ok.ha.groups[0].pools == ("lab",)


def test_ha_vip_belongs_to_one_group() -> None:
    body = "ha:\n  groups:\n" + group() + group(gid=2)
    assert issues(body) == [
        "ha.groups[1].vips[0] (line 8): 198.51.100.10 is already a vip (ha.groups[0])"
    ]


def test_ha_group_ranges() -> None:
    body = """\
        ha:
          groups:
            - id: 256
              interface: eth0
              priority: 255
              advert_interval_ms: 5
              preempt_delay_ms: -1
              vips: []
            - id: 2
              interface: this-name-is-too-long
              advert_interval_ms: 105
              preempt: "no"
              vips: [198.51.100.11]
        """
    assert issues(body) == [
        "ha.groups[0].id (line 7): must be 1-255",
        "ha.groups[0].priority (line 9): must be 1-254",
        "ha.groups[0].advert_interval_ms (line 10): must be 10-40950",
        "ha.groups[0].preempt_delay_ms (line 11): must be >= 0",
        "ha.groups[0].vips (line 12): must have at least 1 item",
        "ha.groups[1].interface (line 14): 'this-name-is-too-long' is not a valid interface name",
        "ha.groups[1].advert_interval_ms (line 15): must be a multiple of 10",
        "ha.groups[1].preempt (line 16): must be a boolean (true or false), not a string",
    ]


def test_ha_needs_groups() -> None:
    assert issues("ha: {}\n") == ["ha.groups (line 5): required key missing"]
    assert issues("ha: {groups: []}\n") == ["ha.groups (line 5): must have at least 1 item"]


def test_sync_groups_reference_existing_groups_once() -> None:
    body = (
        "ha:\n  groups:\n"
        + group()
        + group(gid=2, vips="[198.51.100.11]")
        + "  sync_groups:\n"
        + "    - {name: s1, groups: [1, 7]}\n"
        + "    - {name: s1, groups: [1, 2, 2]}\n"
    )
    assert issues(body) == [
        "ha.sync_groups[0].groups[1] (line 10): no ha group has id 7",
        "ha.sync_groups[1].name (line 11): duplicate sync group name (also ha.sync_groups[0])",
        "ha.sync_groups[1].groups[0] (line 11): group 1 is already in a sync group "
        "(ha.sync_groups[0])",
        "ha.sync_groups[1].groups[2] (line 11): group 2 is already in a sync group "
        "(earlier in this list)",
    ]


def test_track_service_must_exist() -> None:
    body = WEB_SERVICE + "ha:\n  groups:\n" + group(", track: [{type: service, name: api}]")
    assert issues(body) == ["ha.groups[0].track[0].name (line 9): no service is named 'api'"]


def test_track_bgp_peer_must_be_configured() -> None:
    track = ", track: [{type: bgp_peer, name: 192.168.80.1}]"
    body = "ha:\n  groups:\n" + group(track)
    assert issues(body) == [
        "ha.groups[0].track[0].name (line 7): tracks a BGP peer but there is no bgp section"
    ]
    bgp = "bgp:\n  asn: 65100\n  peers: [{address: 192.168.80.254, asn: 65101}]\n"
    assert issues(body + bgp) == [
        "ha.groups[0].track[0].name (line 7): 192.168.80.1 is not a peer in bgp.peers"
    ]
    cfg = parse(body.replace("192.168.80.1}", "192.168.80.254}") + bgp)
    assert cfg.ha is not None and cfg.ha.groups[0].track[0].name == "192.168.80.254"


def test_track_fields() -> None:
    body = """\
        ha:
          groups:
            - id: 1
              interface: eth0
              vips: [198.51.100.10]
              track:
                - {type: interface, name: eth0, weight: 254}
                - {type: bgp_peer, name: router}
                - {type: command, name: /bin/true, interval_ms: 99}
                - {type: interface, name: eth1, interval_ms: 500}
                - {type: process, name: bird}
        """
    assert issues(body) == [
        "ha.groups[0].track[0].weight (line 11): must be between -253 and 253",
        "ha.groups[0].track[1].name (line 12): not an IP address: 'router'",
        "ha.groups[0].track[2].interval_ms (line 13): must be >= 100",
        "ha.groups[0].track[3].interval_ms (line 14): only valid for tracks of type command",
        "ha.groups[0].track[4].type (line 15): "
        "'process' is not one of interface, bgp_peer, service, command",
    ]


def test_auth_key_file_must_exist_and_names_the_resolved_path(tmp_path: Path) -> None:
    body = "ha:\n  groups:\n" + group(", auth_key_file: keys/ha.key")
    missing = tmp_path / "keys" / "ha.key"
    assert issues(body, base_dir=tmp_path) == [
        f"ha.groups[0].auth_key_file (line 7): file not found: {missing}"
    ]
    missing.parent.mkdir()
    missing.write_text("secret")
    cfg = parse(body, base_dir=tmp_path)
    assert cfg.ha is not None and cfg.ha.groups[0].auth_key_file == missing


def test_a_directory_is_not_a_key_file(tmp_path: Path) -> None:
    body = "ha:\n  groups:\n" + group(f", auth_key_file: {tmp_path}")
    assert issues(body) == [f"ha.groups[0].auth_key_file (line 7): not a regular file: {tmp_path}"]


def test_secret_files_are_never_read(tmp_path: Path) -> None:
    key = tmp_path / "ha.key"
    key.write_text("s3cr3t-content")
    key.chmod(0)  # unreadable (when not root): only existence may be checked
    body = "ha:\n  groups:\n" + group(", auth_key_file: ha.key")
    cfg = parse(body, base_dir=tmp_path)
    assert cfg.ha is not None and cfg.ha.groups[0].auth_key_file == key
    assert "s3cr3t" not in repr(cfg)


def test_cross_checks_skip_lists_with_bad_items() -> None:
    # services[0] is bad: the track on it must not also be reported as "no such service"
    body = (
        "services:\n"
        + svc("web", "vip: 198.51.100.10", port=0)
        + "ha:\n  groups:\n"
        + group(", track: [{type: service, name: web}]")
    )
    assert issues(body) == ["services[0].port (line 6): must be 1-65535"]
