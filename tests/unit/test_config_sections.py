"""What each section means: defaults, conversions and section-specific rules."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from appliance.config import (
    AdvertAttrs,
    Advertise,
    Community,
    Config,
    ConfigError,
    Interfaces,
    LargeCommunity,
    NatMode,
    Node,
    PrefixFilter,
    Probe,
    ProbeType,
    Protocol,
    Selection,
    SocketAddress,
    Web,
    load_config,
    parse_config,
)

NODE = "node: {name: n1, id: 7, router_id: 10.1.1.1}\n"


def doc(body: str) -> str:
    """NODE followed by ``body``, an indented triple-quoted block."""
    return NODE + textwrap.dedent(body)


def parse(text: str, base_dir: Path | None = None) -> Config:
    return parse_config(text, base_dir=base_dir)


def issues(text: str, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, base_dir)
    return [str(issue) for issue in info.value.errors]


def test_minimal_config_fills_every_default() -> None:
    cfg = parse("node: {name: n1, id: 1}\n")
    assert cfg == Config(node=Node("n1", 1))
    assert cfg.interfaces == Interfaces(include=(".*",), exclude=("^lo$",), egress_hooks=False)
    assert cfg.vip_pools == () and cfg.services == ()
    assert cfg.ha is None and cfg.bgp is None and cfg.sync is None
    assert cfg.web == Web(SocketAddress(ipaddress.IPv4Address("127.0.0.1"), 8080), None)


def test_interfaces_select_like_the_seed_blacklist() -> None:
    cfg = parse(NODE + "interfaces: {include: ['^eth', '^ens'], exclude: ['^eth9$']}\n")
    assert [n for n in ("lo", "eth0", "eth9", "ens3", "wg0") if cfg.interfaces.selects(n)] == [
        "eth0",
        "ens3",
    ]
    assert Interfaces().selects("eth0") and not Interfaces().selects("lo")


def test_service_defaults() -> None:
    cfg = parse(
        doc(
            """\
        services:
          - name: web
            vip: 198.51.100.10
            port: 80
            endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2, port: 8080, weight: 5}]
        """
        )
    )
    (svc,) = cfg.services
    assert svc.protocol is Protocol.TCP and svc.mode is NatMode.DEFAULT
    assert svc.selection is Selection.ROUNDROBIN and svc.persist_timeout_s == 300
    assert svc.source is None and svc.probe is None and svc.pool is None
    assert [(str(e.address), e.port, e.weight) for e in svc.endpoints] == [
        ("10.0.0.1", 80, 1),
        ("10.0.0.2", 8080, 5),
    ]


def test_probe_defaults_and_endpoint_override() -> None:
    cfg = parse(
        doc(
            """\
        services:
          - name: web
            vip: 198.51.100.10
            port: 80
            probe: {type: http}
            endpoints:
              - {address: 10.0.0.1}
              - {address: 10.0.0.2, probe: {type: tcp, port: 22, interval_ms: 500, timeout_ms: 100}}
        """
        )
    )
    (svc,) = cfg.services
    assert svc.probe == Probe(type=ProbeType.HTTP)
    assert svc.probe.path == "/" and svc.probe.expect_status == 200 and svc.probe.port is None
    assert (svc.probe.interval_ms, svc.probe.timeout_ms, svc.probe.rise, svc.probe.fall) == (
        2000,
        1000,
        2,
        3,
    )
    first, second = svc.endpoints
    assert svc.probe_for(first) == svc.probe
    assert svc.probe_for(second) == Probe(ProbeType.TCP, port=22, interval_ms=500, timeout_ms=100)


def test_probe_http_fields() -> None:
    text = NODE + (
        "services: [{name: w, vip: 198.51.100.1, port: 443, endpoints: [{address: 10.0.0.1}],"
        " probe: {type: https, path: /healthz, expect_status: 204, expect_body: ok}}]\n"
    )
    probe = parse(text).services[0].probe
    assert probe == Probe(ProbeType.HTTPS, path="/healthz", expect_status=204, expect_body="ok")


def test_probe_udp_fields() -> None:
    text = NODE + (
        "services: [{name: d, vip: 198.51.100.1, port: 53, protocol: udp,"
        " endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2, probe: {type: udp}}],"
        " probe: {type: udp, port: 5353, send: hello, expect: olleh}}]\n"
    )
    svc = parse(text).services[0]
    assert svc.probe == Probe(ProbeType.UDP, port=5353, send="hello", expect="olleh")
    assert svc.probe_for(svc.endpoints[1]) == Probe(ProbeType.UDP)
    assert (Probe(ProbeType.UDP).send, Probe(ProbeType.UDP).expect) == (None, None)


def test_persist_and_fullnat() -> None:
    text = NODE + (
        "services: [{name: w, vip: 198.51.100.1, port: 80, endpoints: [{address: 10.0.0.1}],"
        " selection: persist, persist_timeout_s: 60, mode: fullnat, source: 10.0.0.250}]\n"
    )
    svc = parse(text).services[0]
    assert svc.persist_timeout_s == 60 and svc.source == ipaddress.ip_address("10.0.0.250")


def test_null_optional_values_mean_absent() -> None:
    cfg = parse(NODE + "services:\nha:\nweb:\n  listen:\n")
    assert cfg.services == () and cfg.ha is None and cfg.web == Web()


def test_yaml_merge_keys_share_settings() -> None:
    cfg = parse(
        doc(
            """\
        services:
          - name: web
            vip: 198.51.100.10
            port: 80
            endpoints: [{address: 10.0.0.1}]
            probe: &probe {type: tcp, interval_ms: 500, timeout_ms: 200}
          - name: echo
            vip: 198.51.100.10
            port: 9000
            endpoints: [{address: 10.0.0.1}]
            probe:
              <<: *probe
              interval_ms: 1000
        """
        )
    )
    assert cfg.services[1].probe == Probe(ProbeType.TCP, interval_ms=1000, timeout_ms=200)


def test_integers_in_yaml_notations() -> None:
    cfg = parse("node: {name: n1, id: 0x10}\n")
    assert cfg.node.id == 16


def test_bgp_defaults_and_router_id_from_node() -> None:
    cfg = parse(NODE + "bgp: {asn: 65100}\n")
    assert cfg.bgp is not None
    assert cfg.bgp.router_id == ipaddress.IPv4Address("10.1.1.1")
    assert (cfg.bgp.listen_port, cfg.bgp.install_routes, cfg.bgp.peers, cfg.bgp.imports) == (
        179,
        False,
        (),
        (),
    )
    assert cfg.bgp.advertise == Advertise(AdvertAttrs(10, 0), AdvertAttrs(20, 3))


def test_bgp_router_id_is_required_somewhere() -> None:
    assert issues("node: {name: n1, id: 1}\nbgp:\n  asn: 65100\n") == [
        "bgp.router_id (line 2): required key missing (or set node.router_id)"
    ]
    cfg = parse("node: {name: n1, id: 1}\nbgp: {asn: 65100, router_id: 10.9.9.9}\n")
    assert cfg.bgp is not None and str(cfg.bgp.router_id) == "10.9.9.9"
    assert issues("node: {name: n1, id: 1}\nbgp: {asn: 1, router_id: '::1'}\n") == [
        "bgp.router_id (line 2): not an IPv4 address: '::1'"
    ]


def test_bgp_peer_fields(tmp_path: Path) -> None:
    (tmp_path / "md5").write_text("pw")
    cfg = parse(
        doc(
            """\
        bgp:
          asn: 4200000000
          listen_port: 0
          peers:
            - address: 192.168.80.254
              asn: 65101
              password_file: md5
              hold_time: 0
              passive: true
              ttl_security: true
              description: lab router
            - {address: "2001:db8::1", asn: 65102, port: 1179, hold_time: 3}
        """
        ),
        base_dir=tmp_path,
    )
    assert cfg.bgp is not None
    first, second = cfg.bgp.peers
    assert first.password_file == tmp_path / "md5" and first.hold_time == 0
    assert first.passive and first.ttl_security and first.description == "lab router"
    assert second.port == 1179 and second.password_file is None and not second.passive


def test_bgp_errors(tmp_path: Path) -> None:
    text = NODE + textwrap.dedent(
        """\
        bgp:
          asn: 4294967296
          listen_port: 65536
          peers:
            - {address: 10.0.0.1, asn: 0, hold_time: 2, password_file: nope}
            - {address: 10.0.0.2, asn: 1, hold_time: 70000, passive: 1}
            - {address: 10.0.0.2, asn: 1}
          advertise:
            active: {med: -1, prepend: 11}
            standby: {}
        """
    )
    assert issues(text, base_dir=tmp_path) == [
        "bgp.asn (line 3): must be 1-4294967295",
        "bgp.listen_port (line 4): must be 0-65535",
        "bgp.peers[0].asn (line 6): must be 1-4294967295",
        f"bgp.peers[0].password_file (line 6): file not found: {tmp_path / 'nope'}",
        "bgp.peers[0].hold_time (line 6): must be 0 or 3-65535",
        "bgp.peers[1].hold_time (line 7): must be 0-65535",
        "bgp.peers[1].passive (line 7): must be a boolean (true or false), not an integer",
        "bgp.advertise.active.med (line 10): must be 0-4294967295",
        "bgp.advertise.active.prepend (line 10): must be 0-10",
        "bgp.advertise.standby (line 11): unknown key; expected one of active, backup",
    ]


def test_bgp_duplicate_peer() -> None:
    text = (
        NODE
        + "bgp:\n  asn: 1\n  peers: [{address: 10.0.0.2, asn: 1}, {address: 10.0.0.2, asn: 2}]\n"
    )
    assert issues(text) == ["bgp.peers[1].address (line 4): duplicate peer (also peers[0])"]


def test_bgp_communities() -> None:
    cfg = parse(
        doc(
            """\
        bgp:
          asn: 65100
          advertise:
            backup:
              communities: [65100:10, "65100:65535"]
              large_communities: [4200000000:1:2]
        """
        )
    )
    assert cfg.bgp is not None
    backup = cfg.bgp.advertise.backup
    assert backup.communities == (Community(65100, 10), Community(65100, 65535))
    assert backup.large_communities == (LargeCommunity(4200000000, 1, 2),)
    assert (backup.med, backup.prepend) == (20, 3)  # defaults kept beside the given keys


def test_bgp_community_errors() -> None:
    text = NODE + "bgp:\n  asn: 1\n  advertise:\n    active:\n"
    text += "      communities: [65536:1, 1, no-export]\n      large_communities: ['1:2']\n"
    assert issues(text) == [
        "bgp.advertise.active.communities[0] (line 6): not ASN:value with 16-bit parts: '65536:1'",
        "bgp.advertise.active.communities[1] (line 6): not ASN:value with 16-bit parts: '1'",
        "bgp.advertise.active.communities[2] (line 6): not ASN:value with 16-bit parts: "
        "'no-export'",
        "bgp.advertise.active.large_communities[0] (line 7): not a:b:c with 32-bit parts: '1:2'",
    ]


def test_bgp_import_filters() -> None:
    cfg = parse(
        doc(
            """\
        bgp:
          asn: 65100
          import:
            - 0.0.0.0/0
            - {prefix: 10.0.0.0/8}
            - {prefix: 172.16.0.0/12, ge: 16, le: 24}
            - {prefix: "2001:db8::/32", le: 48}
        """
        )
    )
    assert cfg.bgp is not None
    exact, more, ranged, v6 = cfg.bgp.imports
    net = ipaddress.ip_network
    assert exact == PrefixFilter(net("0.0.0.0/0"), 0, 0) and exact.is_exact
    assert (more.ge, more.le) == (8, 32)
    assert (ranged.ge, ranged.le) == (16, 24) and (v6.ge, v6.le) == (32, 48)
    assert ranged.matches(net("172.16.5.0/24")) and not ranged.matches(net("172.16.5.0/25"))
    assert not ranged.matches(net("10.0.0.0/16")) and not v6.matches(net("10.0.0.0/16"))
    assert exact.matches(net("0.0.0.0/0")) and not exact.matches(net("10.0.0.0/8"))


def test_bgp_import_errors() -> None:
    text = NODE + textwrap.dedent(
        """\
        bgp:
          asn: 65100
          import:
            - 10.0.0.1/8
            - {prefix: 10.0.0.0/8, ge: 4}
            - {prefix: 10.0.0.0/8, ge: 24, le: 16}
            - {prefix: 10.0.0.0/8, le: 33, exact: true}
            - {ge: 8}
        """
    )
    assert issues(text) == [
        "bgp.import[0] (line 5): host bits set in '10.0.0.1/8' (did you mean 10.0.0.0/8?)",
        "bgp.import[1].ge (line 6): must be 8-32",
        "bgp.import[2].le (line 7): must be >= ge (24)",
        "bgp.import[3].le (line 8): must be 8-32",
        "bgp.import[3].exact (line 8): unknown key; expected one of prefix, ge, le",
        "bgp.import[4].prefix (line 9): required key missing",
    ]


def test_sync_addresses_and_default_port(tmp_path: Path) -> None:
    (tmp_path / "sync.key").write_text("k")
    cfg = parse(
        NODE + "sync: {listen: 10.0.0.1, peers: [10.0.0.2, '10.0.0.3:8000'], key_file: sync.key}\n",
        base_dir=tmp_path,
    )
    assert cfg.sync is not None
    assert cfg.sync.listen == SocketAddress(ipaddress.IPv4Address("10.0.0.1"), 7946)
    assert [str(p) for p in cfg.sync.peers] == ["10.0.0.2:7946", "10.0.0.3:8000"]
    assert cfg.sync.key_file == tmp_path / "sync.key"
    cfg = parse(
        NODE + "sync: {listen: '[2001:db8::1]:7000', peers: ['2001:db8::2'], key_file: sync.key}\n",
        base_dir=tmp_path,
    )
    assert cfg.sync is not None and str(cfg.sync.listen) == "[2001:db8::1]:7000"
    assert str(cfg.sync.peers[0]) == "[2001:db8::2]:7946"


def test_sync_errors(tmp_path: Path) -> None:
    text = NODE + textwrap.dedent(
        """\
        sync:
          listen: 10.0.0.1:7946
          peers: ["10.0.0.3:0", "10.0.0.4:x"]
        """
    )
    assert issues(text, base_dir=tmp_path) == [
        "sync.key_file (line 2): required key missing",
        "sync.peers[0] (line 4): port must be 1-65535 in '10.0.0.3:0'",
        "sync.peers[1] (line 4): port must be 1-65535 in '10.0.0.4:x'",
    ]
    (tmp_path / "k").write_text("k")
    text = NODE + textwrap.dedent(
        """\
        sync:
          listen: 10.0.0.1:7946
          key_file: k
          peers: ["[2001:db8::2]:7946", "10.0.0.1", "10.0.0.5", "10.0.0.5:7946"]
        """
    )
    assert issues(text, base_dir=tmp_path) == [
        "sync.peers[0] (line 5): IPv6 peer for an IPv4 sync.listen",
        "sync.peers[1] (line 5): is this node's own sync.listen address",
        "sync.peers[3] (line 5): duplicate peer (also sync.peers[2])",
    ]


def test_web_listen_and_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t")
    cfg = parse(NODE + "web: {listen: '[::1]:9090', token_file: token}\n", base_dir=tmp_path)
    assert str(cfg.web.listen) == "[::1]:9090" and cfg.web.token_file == tmp_path / "token"
    cfg = parse(NODE + "web: {listen: 0.0.0.0}\n")
    assert str(cfg.web.listen) == "0.0.0.0:8080"
    assert issues(NODE + "web: {listen: localhost:80}\n") == [
        "web.listen (line 2): not an IP address: 'localhost'"
    ]


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc" / "secrets").mkdir(parents=True)
    (tmp_path / "etc" / "secrets" / "web.token").write_text("t")
    config = tmp_path / "etc" / "node.yaml"
    config.write_text(NODE + "web: {token_file: secrets/web.token}\n")
    cfg = load_config(config)
    assert cfg.web.token_file == tmp_path / "etc" / "secrets" / "web.token"
    assert cfg.web.token_file.is_absolute()


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml")
    assert info.value.source == str(tmp_path / "absent.yaml")
    assert str(info.value) == f"cannot read {tmp_path / 'absent.yaml'}: No such file or directory"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"node: {name: \xff}\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(bad)
