"""dump_config writes every default in a stable order and parses back to an equal Config;
nothing but ConfigError ever escapes the parser (Hypothesis)."""

from __future__ import annotations

import copy
import ipaddress
import string
import textwrap
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.config import (
    AdvertAttrs,
    Advertise,
    Bgp,
    Community,
    Config,
    ConfigError,
    Endpoint,
    LargeCommunity,
    NatMode,
    Node,
    Probe,
    ProbeType,
    Protocol,
    Selection,
    Service,
    dump_config,
    parse_config,
)

FULL = """\
node: {name: edge-1, id: 42, router_id: 10.0.0.1}
interfaces: {include: ["^eth[0-9]+$", "^bond"], exclude: ["^lo$", "^docker"], egress_hooks: true}
vip_pools:
  - {name: lab-vips, cidr: 198.51.100.0/24}
  - {name: v6, cidr: "2001:db8:100::/64"}
services:
  - name: web
    vip: 198.51.100.10
    port: 443
    protocol: tcp
    mode: fullnat
    source: 10.0.0.250
    selection: persist
    persist_timeout_s: 600
    probe: {type: https, port: 8443, path: /healthz, expect_status: 204, expect_body: ok,
            interval_ms: 500, timeout_ms: 200, rise: 1, fall: 5}
    endpoints:
      - {address: 10.0.0.11, port: 8443, weight: 10}
      - {address: 10.0.0.12, port: 8443, weight: 20, probe: {type: icmp}}
  - name: dns
    pool: v6
    port: 53
    protocol: udp
    mode: dsr
    selection: maglev
    endpoints: [{address: "2001:db8::53"}]
    probe: {type: udp, send: "ping\\n", expect: pong}
ha:
  groups:
    - id: 1
      interface: eth0
      priority: 200
      preempt: false
      preempt_delay_ms: 5000
      advert_interval_ms: 1000
      vips: [198.51.100.10, 10.0.0.250]
      unicast_peers: [10.0.0.2]
      auth_key_file: ha.key
      track:
        - {type: interface, name: eth1, weight: -50}
        - {type: bgp_peer, name: 10.0.0.254}
        - {type: service, name: web, weight: 10}
        - {type: command, name: /usr/local/bin/check --quick, interval_ms: 3000}
    - {id: 2, interface: eth0, vips: ["2001:db8:100::1"]}
  sync_groups: [{name: all, groups: [1, 2]}]
bgp:
  asn: 4200000001
  listen_port: 1179
  install_routes: true
  peers:
    - {address: 10.0.0.254, asn: 65101, port: 1179, password_file: md5.key, hold_time: 30,
       passive: true, ttl_security: true, description: "upstream: router 1"}
    - {address: "2001:db8::fe", asn: 65102, hold_time: 0}
  advertise:
    active: {med: 5, communities: ["65100:1"], large_communities: ["4200000001:1:1"]}
    backup: {med: 500, prepend: 10, communities: ["65100:2", "0:0"]}
  import: [0.0.0.0/0, {prefix: 10.0.0.0/8, ge: 16, le: 24}]
sync:
  listen: "[2001:db8::1]"
  peers: ["[2001:db8::2]:7000", "2001:db8::3"]
  key_file: sync.key
web: {listen: "0.0.0.0:9443", token_file: web.token}
"""


def _write_secrets(directory: Path) -> None:
    for name in ("ha.key", "md5.key", "sync.key", "web.token"):
        (directory / name).write_text("x")


def test_full_config_round_trips(tmp_path: Path) -> None:
    _write_secrets(tmp_path)
    cfg = parse_config(FULL, base_dir=tmp_path)
    text = dump_config(cfg)
    assert parse_config(text) == cfg
    assert dump_config(parse_config(text)) == text
    assert str(tmp_path / "ha.key") in text  # files are written resolved


def test_dump_fills_defaults_in_schema_order() -> None:
    cfg = parse_config(
        "node: {name: n1, id: 1}\n"
        "services: [{name: a, vip: 198.51.100.1, port: 80, endpoints: [{address: 10.0.0.1}]}]\n"
    )
    assert dump_config(cfg) == textwrap.dedent(
        """\
        node:
          name: n1
          id: 1
        interfaces:
          include:
            - .*
          exclude:
            - ^lo$
          egress_hooks: false
        vip_pools: []
        services:
          - name: a
            vip: 198.51.100.1
            port: 80
            protocol: tcp
            mode: default
            selection: roundrobin
            endpoints:
              - address: 10.0.0.1
                port: 80
                weight: 1
        web:
          listen: 127.0.0.1:8080
        """
    )


def test_dump_quotes_text_that_yaml_would_misread() -> None:
    cfg = Config(
        node=Node("n1", 1, ipaddress.IPv4Address("10.0.0.1")),
        bgp=Bgp(
            asn=65100,
            router_id=ipaddress.IPv4Address("10.0.0.1"),
            advertise=Advertise(active=AdvertAttrs(communities=(Community(1, 30),))),
        ),
    )
    text = dump_config(cfg)
    assert "'1:30'" in text  # unquoted, YAML 1.1 would read a base-60 integer
    assert parse_config(text) == cfg


# --- Hypothesis -------------------------------------------------------------------------------

ports = st.integers(1, 65535)
weights = st.integers(1, 65535)
ipv4 = st.integers(1, 2**32 - 2).map(ipaddress.IPv4Address)
names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@given(port=ports, endpoint_port=ports, weight=weights, priority=st.integers(1, 254))
def test_valid_numbers_round_trip(
    port: int, endpoint_port: int, weight: int, priority: int
) -> None:
    text = (
        "node: {name: n1, id: 1}\n"
        f"services: [{{name: s, vip: 198.51.100.1, port: {port},"
        f" endpoints: [{{address: 10.0.0.1, port: {endpoint_port}, weight: {weight}}}]}}]\n"
        f"ha: {{groups: [{{id: 1, interface: eth0, priority: {priority},"
        " vips: [198.51.100.1]}]}\n"
    )
    cfg = parse_config(text)
    (svc,) = cfg.services
    assert (svc.port, svc.endpoints[0].port, svc.endpoints[0].weight) == (
        port,
        endpoint_port,
        weight,
    )
    assert cfg.ha is not None and cfg.ha.groups[0].priority == priority
    assert parse_config(dump_config(cfg)) == cfg


@given(value=st.integers().filter(lambda v: not 1 <= v <= 65535))
def test_out_of_range_ports_are_rejected(value: int) -> None:
    text = (
        "node: {name: n1, id: 1}\n"
        f"services: [{{name: s, vip: 198.51.100.1, port: {value},"
        " endpoints: [{address: 10.0.0.1}]}]\n"
    )
    try:
        parse_config(text)
    except ConfigError as exc:
        assert [str(e) for e in exc.errors] == ["services[0].port (line 2): must be 1-65535"]
    else:
        raise AssertionError("accepted")


@st.composite
def probes(draw: st.DrawFn) -> Probe:
    kind = draw(st.sampled_from(ProbeType))
    interval = draw(st.integers(100, 100_000))
    http = kind.is_http
    udp = kind.is_udp
    return Probe(
        type=kind,
        port=draw(st.none() | ports) if kind.uses_port else None,
        path=draw(st.sampled_from(["/", "/health", "/a b?c=1"])) if http else "/",
        expect_status=draw(st.integers(100, 599)) if http else 200,
        expect_body=draw(st.none() | st.text(min_size=1)) if http else None,
        send=draw(st.none() | st.text(min_size=1)) if udp else None,
        expect=draw(st.none() | st.text(min_size=1)) if udp else None,
        interval_ms=interval,
        timeout_ms=draw(st.integers(10, interval - 1)),
        rise=draw(st.integers(1, 100)),
        fall=draw(st.integers(1, 100)),
    )


@st.composite
def services(draw: st.DrawFn, name: str, port: int) -> Service:
    selection = draw(st.sampled_from(Selection))
    mode = draw(st.sampled_from(NatMode))
    endpoints = draw(
        st.lists(
            st.builds(Endpoint, ipv4, ports, weights, st.none() | probes()),
            min_size=1,
            max_size=4,
            unique_by=lambda e: (e.address, e.port),
        )
    )
    return Service(
        name=name,
        port=port,
        endpoints=tuple(endpoints),
        vip=draw(ipv4),
        protocol=draw(st.sampled_from(Protocol)),
        mode=mode,
        selection=selection,
        persist_timeout_s=draw(st.integers(1, 10**9)) if selection is Selection.PERSIST else 300,
        source=draw(st.none() | ipv4) if mode is NatMode.FULLNAT else None,
        probe=draw(st.none() | probes()),
    )


u32 = st.integers(0, 2**32 - 1)
advert_attrs = st.builds(
    AdvertAttrs,
    u32,
    st.integers(0, 10),
    st.lists(st.builds(Community, st.integers(0, 65535), st.integers(0, 65535))).map(tuple),
    st.lists(st.builds(LargeCommunity, u32, u32, u32)).map(tuple),
)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    service_names = draw(st.lists(names, max_size=4, unique=True))
    count = len(service_names)
    service_ports = draw(st.lists(ports, min_size=count, max_size=count, unique=True))
    router_id = draw(ipv4)
    bgp = draw(
        st.none()
        | st.builds(
            Bgp,
            asn=st.integers(1, 2**32 - 1),
            router_id=st.just(router_id),
            listen_port=st.integers(0, 65535),
            install_routes=st.booleans(),
            advertise=st.builds(Advertise, advert_attrs, advert_attrs),
        )
    )
    return Config(
        node=Node(draw(names), draw(st.integers(1, 255)), router_id),
        services=tuple(
            draw(services(n, p)) for n, p in zip(service_names, service_ports, strict=True)
        ),
        bgp=bgp,
    )


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs())
def test_generated_configs_round_trip(cfg: Config) -> None:
    assert parse_config(dump_config(cfg)) == cfg


yaml_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["65100:10", "1:30", "0x1f", "0o17", "2001-13-45", "~", "yes", "::", ""])
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
TEMPLATE = {
    "node": {"name": "n1", "id": 1, "router_id": "10.0.0.1"},
    "interfaces": {"include": [".*"], "exclude": ["^lo$"], "egress_hooks": False},
    "vip_pools": [{"name": "p", "cidr": "198.51.100.0/24"}],
    "services": [
        {
            "name": "web",
            "vip": "198.51.100.10",
            "port": 80,
            "probe": {"type": "http", "path": "/", "interval_ms": 1000, "timeout_ms": 500},
            "endpoints": [{"address": "10.0.0.1", "port": 8080, "weight": 1}],
        }
    ],
    "ha": {"groups": [{"id": 1, "interface": "eth0", "vips": ["198.51.100.10"], "track": []}]},
    "bgp": {
        "asn": 65100,
        "peers": [{"address": "10.0.0.254", "asn": 65101, "hold_time": 9}],
        "advertise": {"active": {"med": 0, "communities": ["65100:1"]}},
        "import": [{"prefix": "10.0.0.0/8", "ge": 8, "le": 24}],
    },
    "sync": {"listen": "10.0.0.1", "peers": ["10.0.0.2"], "key_file": "/nonexistent"},
    "web": {"listen": "127.0.0.1:8080"},
}


def _slots(tree: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in TEMPLATE that holds a value."""
    found = [path] if path else []
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _slots(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            found += _slots(value, (*path, index))
    return found


SLOTS = _slots(TEMPLATE)


def _replaced(path: tuple[Any, ...], value: object) -> Any:
    tree = copy.deepcopy(TEMPLATE)
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return tree


@settings(max_examples=300)
@given(slot=st.sampled_from(SLOTS), value=yaml_values)
def test_garbage_in_any_slot_raises_only_config_error(slot: tuple[Any, ...], value: object) -> None:
    text = yaml.dump(_replaced(slot, value), Dumper=DUMPER, sort_keys=False)
    try:
        parse_config(text)
    except ConfigError as exc:
        assert exc.errors and all(issue.message for issue in exc.errors)


@settings(max_examples=300)
@given(text=st.text(alphabet=string.printable + "\x00\ufeff\u2028é", max_size=200))
def test_arbitrary_text_raises_only_config_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as exc:
        assert exc.errors


@given(document=yaml_values)
def test_arbitrary_documents_raise_only_config_error(document: object) -> None:
    try:
        parse_config(yaml.dump(document, Dumper=DUMPER))
    except ConfigError as exc:
        assert exc.errors
