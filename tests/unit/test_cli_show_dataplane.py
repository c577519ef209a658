"""`triolb show services` / `show conntrack`: the pure parts (query parsing, documents, text).

The API over real maps and the commands against a served app are in
tests/dataplane/test_api_dataplane.py.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from appliance.cli import build_parser, main
from appliance.cli_remote import conntrack_params, conntrack_text, services_text
from appliance.config import parse_config
from appliance.config.model import ProbeType
from appliance.dataplane import DataplaneStatus
from appliance.health.state import Health
from appliance.health.status import EndpointStatus as ProbeStatus
from appliance.intent import compute_intent
from bpf.conntrack import CtFilter, CtRecord, CtTuple
from bpf.layout import CT_DSR, CT_REMOTE, CtState
from bpf.programmer import EndpointStatus, ServiceStatus
from web.routes_dataplane import (
    DEFAULT_LIMIT,
    connection_json,
    parse_conntrack_query,
    services_json,
)

IP = ipaddress.IPv4Address
CONFIG = parse_config(
    "node: {name: n1, id: 1}\n"
    "services: [{name: web, vip: 198.51.100.10, port: 80, mode: dsr, selection: maglev,"
    " endpoints: [{address: 192.168.80.101, port: 8080}, {address: 192.168.80.102, port: 8080}]}]"
)


def _endpoint(last: int, **kw: Any) -> EndpointStatus:
    fields: dict[str, Any] = {
        "address": f"192.168.80.{last}",
        "port": 8080,
        "index": last - 101,
        "weight": 1,
        "state": "active",
        "open_conns": 0,
        "packets": 0,
        "bytes": 0,
        "conns": 0,
        "drops": 0,
    }
    fields.update(kw)
    return EndpointStatus(**fields)


def _status(*services: ServiceStatus, **kw: Any) -> DataplaneStatus:
    fields: dict[str, Any] = {
        "node": "n1",
        "adopted": True,
        "layout_reset": False,
        "attached": (("eth0", ("ingress",)),),
        "services": services,
        "connections": 4,
        "events": 0,
        "events_dropped": 0,
    }
    fields.update(kw)
    return DataplaneStatus(**fields)


WEB = ServiceStatus(
    name="web",
    vip="198.51.100.10",
    port=80,
    protocol="tcp",
    id=0,
    slot=1,
    endpoints=(_endpoint(101, open_conns=3, packets=9), _endpoint(102, state="draining")),
    packets=9,
    bytes=900,
    conns=5,
    drops=1,
)


# -- the API's documents --------------------------------------------------------------------


def test_services_json_joins_config_and_health() -> None:
    probes = (
        ProbeStatus(
            "web",
            ipaddress.ip_address("192.168.80.101"),
            8080,
            ProbeType.HTTP,
            8080,
            True,
            Health.UP,
            True,
            None,
            2.25,
            checked_at=1700000000.0,
        ),
    )
    doc = services_json(_status(WEB), CONFIG, probes, {})
    assert doc["attached"] == [{"interface": "eth0", "hooks": ["ingress"]}]
    assert (doc["adopted"], doc["connections"], doc["skipped"], doc["errors"]) == (True, 4, [], [])
    (web,) = doc["services"]
    assert (web["mode"], web["selection"], web["slot"], web["connections"]) == (
        "dsr",
        "maglev",
        1,
        5,
    )
    probed, unprobed = web["endpoints"]
    assert (probed["health"], probed["probe"], probed["latency_ms"]) == ("up", "http", 2.25)
    assert (probed["checked_at"], probed["open_connections"], probed["packets"]) == (
        1700000000.0,
        3,
        9,
    )
    # neither a probe status nor an up/down verdict: unknown
    assert (unprobed["state"], unprobed["health"], unprobed["probe"]) == (
        "draining",
        "unknown",
        None,
    )


def test_services_json_health_from_the_controller_and_no_config() -> None:
    health = {("web", ipaddress.ip_address("192.168.80.102"), 8080): False}
    doc = services_json(_status(WEB, skipped=("v6",), errors=("boom",)), None, (), health)
    (web,) = doc["services"]
    assert (web["mode"], web["selection"]) == (None, None)
    assert [e["health"] for e in web["endpoints"]] == ["unknown", "down"]
    assert (doc["skipped"], doc["errors"]) == (["v6"], ["boom"])


def test_services_json_says_whether_each_service_is_advertised_and_why_not() -> None:
    cfg = parse_config(
        "node: {name: n1, id: 1}\n"
        "vip_pools: [{name: p, cidr: 198.51.100.0/24}]\n"
        "services:\n"
        "  - {name: web, vip: 198.51.100.10, port: 80, endpoints: [{address: 192.168.80.101}]}\n"
        "  - {name: new, pool: p, port: 81, endpoints: [{address: 192.168.80.101}]}\n"
        "bgp: {asn: 65100, router_id: 192.168.80.252}\n"
    )
    down = {("web", ipaddress.ip_address("192.168.80.101"), 80): False}
    intent = compute_intent(cfg, {}, down, {}, ("service new: pool p is full",))
    doc = services_json(_status(WEB), cfg, (), down, intent)
    (web,) = doc["services"]
    assert (web["route"], web["withdrawn_reason"], web["role"]) == (
        "withdrawn",
        "no healthy endpoint",
        "active",
    )
    assert doc["unallocated"] == ["new"]
    assert doc["pool_conflicts"] == ["service new: pool p is full"]
    text = services_text(doc)
    assert "pool conflict: service new: pool p is full" in text
    assert "withdrawn (no healthy endpoint)" in text
    up = services_json(_status(WEB), cfg, (), {}, compute_intent(cfg, {}))
    assert (up["services"][0]["route"], up["services"][0]["withdrawn_reason"]) == (
        "advertised",
        None,
    )


def test_parse_conntrack_query_defaults_and_values() -> None:
    query = parse_conntrack_query({}, {})
    assert (query.count, query.limit, query.offset, query.filter) == (
        False,
        DEFAULT_LIMIT,
        0,
        CtFilter(),
    )
    assert not query.filtered
    query = parse_conntrack_query(
        {
            "count": "true",
            "limit": "0",
            "offset": "7",
            "service": "web",
            "client": "203.0.113.10",
            "vip": "198.51.100.10",
            "endpoint": "192.168.80.101",
            "state": "Syn_Sent",
            "remote": "no",
        },
        {"web": 4},
    )
    assert (query.count, query.limit, query.offset) == (True, 0, 7)
    assert query.filter == CtFilter(
        svc_id=4,
        client=IP("203.0.113.10"),
        vip=IP("198.51.100.10"),
        endpoint=IP("192.168.80.101"),
        state=CtState.SYN_SENT,
        remote=False,
    )
    assert query.filtered


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"limit": "1001"}, "limit must be an integer 0-1000, not '1001'"),
        ({"limit": ""}, "limit must be an integer"),
        ({"offset": "-3"}, "offset must be an integer"),
        ({"client": "x"}, "client must be an IP address, not 'x'"),
        ({"endpoint": "::1"}, "endpoint: the dataplane is IPv4-only"),
        ({"state": "up"}, "state must be one of syn_sent, established, fin_wait, closed, udp"),
        ({"service": "dns"}, "service 'dns' is not in the dataplane (services: web)"),
        ({"remote": "2"}, "remote must be true or false"),
        ({"page": "2"}, "unknown parameter page"),
    ],
)
def test_parse_conntrack_query_refuses(params: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_conntrack_query(params, {"web": 0})
    assert says in str(caught.value)


def test_connection_json() -> None:
    record = CtRecord(
        key=CtTuple(IP("203.0.113.10"), IP("198.51.100.10"), 40000, 80, 6),
        nat=CtTuple(IP("198.51.100.250"), IP("192.168.80.101"), 30000, 8080, 6),
        svc_id=2,
        ep_index=0,
        state=9,
        flags=CT_REMOTE | CT_DSR,
        age_s=12.34567,
        idle_s=0.5,
        packets=3,
        bytes=180,
    )
    doc = connection_json(record, {})
    assert doc["state"] == "unknown(9)" and doc["service"] is None
    assert (doc["remote"], doc["dsr"], doc["age_s"]) == (True, True, 12.346)
    assert (doc["source"], doc["source_port"], doc["endpoint_port"]) == (
        "198.51.100.250",
        30000,
        8080,
    )


# -- the command line --------------------------------------------------------------------------


def test_conntrack_params_only_what_was_given() -> None:
    parse = build_parser().parse_args
    assert conntrack_params(parse(["show", "conntrack"])) == {}
    argv = [
        "show", "--json", "conntrack", "--count", "--service", "web", "--state", "udp",
        "--client", "203.0.113.10", "--vip", "198.51.100.10", "--endpoint", "192.168.80.1",
        "--limit", "5", "--offset", "10", "--remote",
    ]  # fmt: skip
    args = parse(argv)
    assert conntrack_params(args) == {
        "count": "1",
        "service": "web",
        "state": "udp",
        "client": "203.0.113.10",
        "vip": "198.51.100.10",
        "endpoint": "192.168.80.1",
        "limit": "5",
        "offset": "10",
        "remote": "1",
    }
    assert conntrack_params(parse(["show", "conntrack", "--local"])) == {"remote": "0"}
    with pytest.raises(SystemExit):
        parse(["show", "conntrack", "--local", "--remote"])


def test_services_text() -> None:
    intent = compute_intent(CONFIG, {})
    body = services_json(_status(WEB, adopted=True, skipped=("v6",)), CONFIG, intent=intent)
    lines = services_text(body).splitlines()
    assert lines[0] == "node n1: 4 connections; attached: eth0 (ingress); adopted pinned maps"
    assert lines[1] == "skipped (IPv4-only dataplane): v6"
    assert lines[3].split() == [
        "service", "vip", "mode", "selection", "route", "id", "open", "conns", "packets", "bytes",
        "drops",
    ]  # fmt: skip
    assert lines[4].split() == [
        "web", "198.51.100.10:80/tcp", "dsr", "maglev", "withdrawn", "(bgp", "not", "configured)",
        "0", "3", "5", "9", "900", "1",
    ]  # fmt: skip
    assert lines[6] == "web 198.51.100.10:80/tcp (slot 1)"
    assert lines[7].startswith("  endpoint ")
    assert lines[8].split() == [
        "192.168.80.101:8080", "1", "active", "unknown", "-", "3", "0", "9", "0"
    ]  # fmt: skip
    assert lines[9].split()[:3] == ["192.168.80.102:8080", "1", "draining"]
    empty = services_text(services_json(_status(attached=()), None))
    assert empty == "node n1: 4 connections; attached: nowhere; adopted pinned maps\n" + (
        "no services in the dataplane"
    )


def test_conntrack_text() -> None:
    assert conntrack_text({"count": 12}) == "12"
    assert conntrack_text({"total": 3, "offset": 5, "limit": 10, "connections": []}) == (
        "no connections (total 3, offset 5)"
    )
    record = CtRecord(
        key=CtTuple(IP("203.0.113.10"), IP("198.51.100.10"), 40000, 80, 6),
        nat=CtTuple(IP("203.0.113.10"), IP("192.168.80.101"), 40000, 8080, 6),
        svc_id=0,
        ep_index=0,
        state=CtState.ESTABLISHED,
        flags=0,
        age_s=3725.0,
        idle_s=1.25,
        packets=3,
        bytes=180,
    )
    body = {"total": 7, "offset": 5, "limit": 1, "connections": [connection_json(record, {})]}
    header, row, footer = conntrack_text(body).splitlines()
    assert header.split() == [
        "proto", "client", "vip", "endpoint", "nat", "source", "state", "age", "idle", "packets",
        "bytes", "service",
    ]  # fmt: skip
    assert row.split() == [
        "tcp", "203.0.113.10:40000", "198.51.100.10:80", "192.168.80.101:8080",
        "203.0.113.10:40000", "established", "1:02:05", "1.2s", "3", "180", "0",
    ]  # fmt: skip
    assert footer == "connections 6-6 of 7"


def test_unreachable_node_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9"  # discard: nothing listens
    assert main(["show", "--node", url, "services"]) == 1
    assert main(["show", "--node", url, "conntrack", "--count"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count(f"triolb: {url}/api/v1/") == 2
