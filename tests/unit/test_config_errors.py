"""Every kind of configuration error names the exact key path and line."""

from __future__ import annotations

import pickle
import textwrap
from pathlib import Path

import pytest

from appliance.config import ConfigError, ConfigIssue, parse_config


def issues(text: str, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), base_dir=base_dir)
    assert str(info.value) == "\n".join(str(issue) for issue in info.value.errors)
    return [str(issue) for issue in info.value.errors]


NODE = "node: {name: n1, id: 1, router_id: 10.0.0.1}\n"


def test_issue_text_has_path_line_and_message() -> None:
    issue = ConfigIssue("services[2].endpoints[0].port", 31, "must be 1-65535")
    assert str(issue) == "services[2].endpoints[0].port (line 31): must be 1-65535"
    assert str(ConfigIssue("web.token_file", None, "x")) == "web.token_file: x"
    assert str(ConfigIssue("", 3, "bad")) == "line 3: bad"


def test_unknown_key_names_key_line_and_expected_keys() -> None:
    text = """\
        node: {name: n1, id: 1}
        services:
          - name: web
            vip: 198.51.100.10
            port: 80
            endpoints:
              - address: 10.0.0.11
              - address: 10.0.0.12
                wieght: 3
        """
    assert issues(text) == [
        "services[0].endpoints[1].wieght (line 9): unknown key; "
        "expected one of address, port, weight, probe"
    ]


def test_unknown_top_level_key() -> None:
    assert issues(NODE + "servics: []\n") == [
        "servics (line 2): unknown key; expected one of node, interfaces, vip_pools, services, "
        "ha, bgp, sync, web"
    ]


def test_missing_key_reports_the_parent_mapping_line() -> None:
    text = """\
        interfaces: {}
        node:
          name: n1
        """
    assert issues(text) == ["node.id (line 2): required key missing"]
    assert issues("web: {}\n") == ["node (line 1): required key missing"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("true", "must be an integer, not a boolean"),
        ('"1"', "must be an integer, not a string"),
        ("1.0", "must be an integer, not a number"),
        ("[1]", "must be an integer, not a list"),
        ("{a: 1}", "must be an integer, not a mapping"),
        ("0", "must be 1-255"),
        ("256", "must be 1-255"),
    ],
)
def test_node_id_type_and_range(value: str, message: str) -> None:
    assert issues(f"node:\n  name: n1\n  id: {value}\n") == [f"node.id (line 3): {message}"]


def test_node_name_pattern() -> None:
    assert issues("node: {name: Node_1, id: 1}\n") == [
        "node.name (line 1): 'Node_1' is not a valid name: lower-case letters, digits and '-'; "
        "at most 31 characters"
    ]


def test_null_for_a_required_key_is_missing() -> None:
    assert issues("node: {name: n1, id: }\n") == ["node.id (line 1): required key missing"]


SERVICE = """\
node: {name: n1, id: 1}
services:
  - name: web
    vip: 198.51.100.10
    port: 80
    endpoints:
      - address: 10.0.0.11
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("port: 0", "services[0].endpoints[0].port (line 8): must be 1-65535"),
        ("port: 65536", "services[0].endpoints[0].port (line 8): must be 1-65535"),
        ("weight: 0", "services[0].endpoints[0].weight (line 8): must be 1-65535"),
        (
            "weight: yes",
            "services[0].endpoints[0].weight (line 8): must be an integer, not a boolean",
        ),
        ("probe: {rise: 0}", "services[0].endpoints[0].probe.rise (line 8): must be 1-100"),
        ("probe: {fall: 101}", "services[0].endpoints[0].probe.fall (line 8): must be 1-100"),
        (
            "probe: {interval_ms: 99}",
            "services[0].endpoints[0].probe.interval_ms (line 8): must be >= 100",
        ),
        (
            "probe: {type: http, expect_status: 600}",
            "services[0].endpoints[0].probe.expect_status (line 8): must be 100-599",
        ),
        (
            "probe: {type: smtp}",
            "services[0].endpoints[0].probe.type (line 8): "
            "'smtp' is not one of none, icmp, tcp, udp, http, https",
        ),
        (
            "probe: {type: tcp, path: /health}",
            "services[0].endpoints[0].probe.path (line 8): only valid for http and https probes",
        ),
        (
            "probe: {type: icmp, port: 80}",
            "services[0].endpoints[0].probe.port (line 8): only valid for probe types with a port",
        ),
        (
            "probe: {type: tcp, send: hello}",
            "services[0].endpoints[0].probe.send (line 8): only valid for udp probes",
        ),
        (
            "probe: {type: http, expect: ok}",
            "services[0].endpoints[0].probe.expect (line 8): only valid for udp probes",
        ),
        (
            "probe: {type: udp, expect_body: ok}",
            "services[0].endpoints[0].probe.expect_body (line 8): only valid for http and https"
            " probes",
        ),
        (
            "probe: {type: udp, send: ''}",
            "services[0].endpoints[0].probe.send (line 8): must not be empty",
        ),
        (
            "probe: {type: http, path: health}",
            "services[0].endpoints[0].probe.path (line 8): must start with '/'",
        ),
    ],
)
def test_endpoint_errors(extra: str, message: str) -> None:
    assert issues(SERVICE + f"        {extra}\n") == [message]


def test_probe_timeout_must_be_below_interval() -> None:
    text = SERVICE + "    probe:\n      interval_ms: 1000\n      timeout_ms: 1000\n"
    assert issues(text) == [
        "services[0].probe.timeout_ms (line 10): must be less than interval_ms (1000)"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("protocol: sctp", "services[0].protocol (line 8): 'sctp' is not one of tcp, udp"),
        (
            "mode: nat",
            "services[0].mode (line 8): 'nat' is not one of default, onearm, fullnat, dsr",
        ),
        ("source: 10.0.0.1", "services[0].source (line 8): only valid with mode fullnat"),
        (
            "persist_timeout_s: 60",
            "services[0].persist_timeout_s (line 8): only valid with selection persist",
        ),
        ("pool: lab", "services[0].pool (line 8): give either vip or pool, not both"),
        ("endpoints: []", "services[0].endpoints (line 8): duplicate key (first at line 6)"),
    ],
)
def test_service_errors(extra: str, message: str) -> None:
    assert issues(SERVICE + f"    {extra}\n") == [message]


def test_service_needs_vip_or_pool() -> None:
    text = SERVICE.replace("    vip: 198.51.100.10\n", "")
    assert issues(text) == [
        "services[0].vip (line 3): required key missing (a service needs either vip or pool)"
    ]


def test_service_needs_endpoints() -> None:
    text = SERVICE.replace("      - address: 10.0.0.11\n", "").replace(
        "endpoints:", "endpoints: []"
    )
    assert issues(text) == ["services[0].endpoints (line 6): must have at least 1 item"]


def test_persist_and_fullnat_options_are_accepted_where_they_apply() -> None:
    text = SERVICE + "    selection: persist\n    persist_timeout_s: 0\n"
    assert issues(text) == ["services[0].persist_timeout_s (line 9): must be >= 1"]
    text = SERVICE + "    mode: fullnat\n    source: 10.0.0.300\n"
    assert issues(text) == ["services[0].source (line 9): not an IP address: '10.0.0.300'"]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("10.0.0", "not an IP address: '10.0.0'"),
        ("2001:db8::zz", "not an IP address: '2001:db8::zz'"),
        ("10.0.0.0/8", "not an IP address: '10.0.0.0/8'"),
        ("true", "must be a string, not a boolean (quote it)"),
    ],
)
def test_bad_addresses(address: str, message: str) -> None:
    text = SERVICE.replace("address: 10.0.0.11", f"address: {address}")
    assert issues(text) == [f"services[0].endpoints[0].address (line 7): {message}"]


def test_vip_pool_cidr_must_be_strict() -> None:
    text = NODE + "vip_pools:\n  - name: lab\n    cidr: 198.51.100.1/24\n"
    assert issues(text) == [
        "vip_pools[0].cidr (line 4): host bits set in '198.51.100.1/24' "
        "(did you mean 198.51.100.0/24?)"
    ]
    text = NODE + "vip_pools:\n  - name: lab\n    cidr: 198.51.100.1\n"
    assert issues(text) == [
        "vip_pools[0].cidr (line 4): not a CIDR (address/prefix length): '198.51.100.1'"
    ]


def test_interface_regexes_must_compile() -> None:
    text = NODE + "interfaces:\n  include: ['^eth[0-9']\n  exclude: ['(']\n"
    got = issues(text)
    assert len(got) == 2
    assert got[0].startswith(
        "interfaces.include[0] (line 3): invalid regular expression '^eth[0-9'"
    )
    assert got[1].startswith("interfaces.exclude[0] (line 4): invalid regular expression '('")


def test_interfaces_egress_hooks_is_a_boolean() -> None:
    assert issues(NODE + "interfaces: {egress_hooks: 1}\n") == [
        "interfaces.egress_hooks (line 2): must be a boolean (true or false), not an integer"
    ]


def test_many_errors_are_all_reported_in_line_order() -> None:
    text = """\
        node:
          name: n1
          id: 0
        services:
          - name: web
            vip: 198.51.100.10
            port: 80
            protocol: sctp
            endpoints:
              - address: 10.0.0.11
                port: 0
        web:
          listen: 127.0.0.1:99999
          colour: blue
        """
    assert issues(text) == [
        "node.id (line 3): must be 1-255",
        "services[0].protocol (line 8): 'sctp' is not one of tcp, udp",
        "services[0].endpoints[0].port (line 11): must be 1-65535",
        "web.listen (line 13): port must be 1-65535 in '127.0.0.1:99999'",
        "web.colour (line 14): unknown key; expected one of listen, token_file",
    ]


def test_structure_and_cross_check_errors_are_reported_together() -> None:
    text = """\
        node: {name: n1, id: 1}
        services:
          - {name: web, vip: 198.51.100.10, port: 80, endpoints: [{address: 10.0.0.1}]}
          - {name: web, vip: 198.51.100.10, port: 81, endpoints: [{address: 10.0.0.1}]}
          - {name: dns, vip: 198.51.100.10, port: 53, endpoints: [{address: 10.0.0.1, port: 0}]}
        """
    assert issues(text) == [
        "services[1].name (line 4): duplicate service name (also services[0])",
        "services[2].endpoints[0].port (line 5): must be 1-65535",
    ]


def test_top_level_must_be_a_mapping() -> None:
    assert issues("- node\n") == ["line 1: the configuration must be a mapping, not a list"]
    assert issues("just text\n") == ["line 1: the configuration must be a mapping, not a string"]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n...\n"])
def test_empty_configuration(text: str) -> None:
    assert issues(text) == ["the configuration is empty"]


def test_yaml_syntax_error_reports_its_line() -> None:
    text = NODE + "services:\n  - name: web\n    port: [80\n"
    (message,) = issues(text)
    assert message.startswith("line 4: invalid YAML: ")


def test_yaml_indentation_error_reports_its_line() -> None:
    text = "node:\n  name: n1\n   id: 1\n"
    (message,) = issues(text)
    assert message.startswith("line 3: invalid YAML: ")


def test_tabs_are_a_yaml_error() -> None:
    (message,) = issues("node:\n\tname: n1\n")
    assert message.startswith("line 2: invalid YAML: ")


def test_several_documents_are_rejected() -> None:
    (message,) = issues(NODE + "---\n" + NODE)
    assert message.startswith("line 2: invalid YAML: ")


def test_duplicate_keys_are_rejected_at_every_level() -> None:
    text = """\
        node:
          name: n1
          id: 1
          name: n2
        web: {}
        web: {}
        """
    assert issues(text) == [
        "node.name (line 4): duplicate key (first at line 2)",
        "web (line 6): duplicate key (first at line 5)",
    ]


def test_unsupported_tags_are_rejected() -> None:
    assert issues("node: {name: !!python/name:os.system n1, id: 1}\n") == [
        "node.name (line 1): unsupported tag tag:yaml.org,2002:python/name:os.system"
    ]
    assert issues("node: !custom {name: n1, id: 1}\n") == ["node (line 1): unsupported tag !custom"]


def test_recursive_alias_is_rejected() -> None:
    (message,) = issues(NODE + "services: &s [*s]\n")
    assert message == "services[0] (line 2): recursive alias"


def test_non_string_mapping_keys_are_rejected() -> None:
    assert issues(NODE + "web: {[a]: 1}\n") == ["web (line 2): mapping keys must be strings"]


def test_errors_remember_the_source_name() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("", source="node1.yaml")
    assert info.value.source == "node1.yaml"


def test_unusable_values_are_config_errors() -> None:
    text = NODE + 'web: {token_file: "a\\0b", listen: "[fe80::1%eth0]:80"}\n'
    assert issues(text) == [
        "web.listen (line 2): zone index not allowed in an address: 'fe80::1%eth0'",
        "web.token_file (line 2): unusable file name 'a\\x00b': embedded null byte",
    ]


def test_config_error_pickles() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("node: {name: n1, id: 0}\n", source="x.yaml")
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.errors == info.value.errors and copy.source == "x.yaml"


def test_yaml_error_at_the_end_of_the_text_reports_the_last_line() -> None:
    (message,) = issues(NODE + "services: [")
    assert message.startswith("line 2: invalid YAML: ")
