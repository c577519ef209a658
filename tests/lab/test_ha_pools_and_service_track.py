"""The service controller and HA together, end to end in scenario 2 (two nodes, HA, BGP to
BIRD): an HA group holding a VIP pool takes and releases pool addresses as services come and
go by reload, without a role change; a group tracking a service hands over when the node's
probes find every endpoint of that service down (and that node stops advertising it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.api import LabHandle
from tests.lab.support.bird_configs import parse_routes
from tests.lab.support.ha import (
    EXAMPLES,
    events,
    ha_states,
    roles,
    show_ha,
    start_daemon,
    wait_until,
)

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")
NODE_ADDRESSES = {"node1": "192.168.80.252", "node2": "192.168.80.253"}
POOL = "lab-vips"


def _service(name: str, port: int, *, probe: bool = False) -> dict[str, Any]:
    service: dict[str, Any] = {
        "name": name,
        "pool": POOL,
        "port": port,
        "endpoints": [{"address": f"192.168.80.{101 + i}", "port": 8080} for i in range(3)],
    }
    if probe:
        service["probe"] = {"type": "tcp", "interval_ms": 200, "timeout_ms": 150, "fall": 2}
    return service


def _config(tmp_path: Path, node: str, services: list[dict[str, Any]], **group: Any) -> Path:
    """Scenario 2's config for ``node``: the group holds the pool; ``services`` replace the
    example's."""
    tree = yaml.safe_load((EXAMPLES / f"scenario2-bgp-active-backup-{node}.yaml").read_text())
    (ha_group,) = tree["ha"]["groups"]
    ha_group["auth_key_file"] = str(EXAMPLES / "secrets" / "ha.key")
    ha_group["pools"] = [POOL]
    ha_group.update(group)
    tree["services"] = services
    path = tmp_path / f"{node}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def _allocation(handle: LabHandle, node: str) -> dict[str, str]:
    """The node's latest pool allocation (its ``pool_allocation`` log event)."""
    found = [e for e in events(handle, f"{node}-daemon") if e["event"] == "pool_allocation"]
    return dict(found[-1]["addresses"]) if found else {}


def _on_lo(handle: LabHandle, node: str) -> set[str]:
    out = handle.exec(node, ["ip", "-4", "-o", "addr", "show", "dev", "lo"], timeout=5).stdout
    return {line.split()[3].split("/")[0] for line in out.splitlines()} - {"127.0.0.1"}


def _best_hop(handle: LabHandle, address: str) -> str | None:
    """The router's best next hop for ``address``/32, None when it has no route."""
    routes = parse_routes(handle.birdc("show route all"))  # a prefix BIRD lacks is an error
    best = [r for r in routes if r.prefix == f"{address}/32" and r.primary and r.via]
    return best[0].via[0] if best else None


def _reloads(handle: LabHandle, node: str) -> int:
    return sum(e["event"] == "reload_applied" for e in events(handle, f"{node}-daemon"))


def _reload(handle: LabHandle, pids: dict[str, int]) -> None:
    """SIGHUP every daemon (its config file was rewritten); wait until each applied it."""
    before = {node: _reloads(handle, node) for node in pids}
    for pid in pids.values():
        os.kill(pid, signal.SIGHUP)
    wait_until(
        "the reloads to be applied",
        lambda: all(_reloads(handle, node) > before[node] for node in pids),
    )


def test_pool_addresses_follow_services_without_a_role_change(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario2", start_endpoints=False)
    configs = {n: _config(tmp_path, n, [_service("one", 80)]) for n in NODES}
    pids = {n: start_daemon(handle, n, configs[n]) for n in NODES}
    wait_until("both nodes to allocate", lambda: all(_allocation(handle, n) for n in NODES))
    one = _allocation(handle, "node1")["one"]
    assert _allocation(handle, "node2") == {"one": one}  # same config, same address
    wait_until(
        "node1 active with the pool address on lo, advertised as preferred",
        lambda: (
            roles(handle, NODES) == dict(node1="active", node2="backup")
            and one in _on_lo(handle, "node1")
            and one not in _on_lo(handle, "node2")
            and _best_hop(handle, one) == NODE_ADDRESSES["node1"]
        ),
    )
    states = {n: ha_states(handle, f"{n}-daemon") for n in NODES}

    # a second service: its address joins the group, taken by the active node only
    for node in NODES:
        _config(tmp_path, node, [_service("one", 80), _service("two", 81)])
    _reload(handle, pids)
    wait_until(
        "both nodes to allocate two", lambda: all("two" in _allocation(handle, n) for n in NODES)
    )
    two = _allocation(handle, "node1")["two"]
    assert _allocation(handle, "node2") == {"one": one, "two": two} and two != one
    wait_until(
        "node1 to hold and advertise both",
        lambda: (
            {one, two} <= _on_lo(handle, "node1")
            and not {one, two} & _on_lo(handle, "node2")
            and _best_hop(handle, two) == NODE_ADDRESSES["node1"]
        ),
    )

    # the first service goes: its address is released and withdrawn; the second one stays
    for node in NODES:
        _config(tmp_path, node, [_service("two", 81)])
    _reload(handle, pids)
    wait_until(
        "node1 to release the first address and keep the second",
        lambda: (
            one not in _on_lo(handle, "node1")
            and two in _on_lo(handle, "node1")
            and _best_hop(handle, one) is None
            and _best_hop(handle, two) == NODE_ADDRESSES["node1"]
        ),
    )
    assert _allocation(handle, "node1") == {"two": two}
    # no election happened on either node through all of it
    assert {n: ha_states(handle, f"{n}-daemon") for n in NODES} == states


BLOCK = (
    "add table inet probe_block\n"
    "add chain inet probe_block out { type filter hook output priority 0; }\n"
    "add rule inet probe_block out ip daddr 192.168.80.101-192.168.80.103 tcp dport 8080 drop\n"
)


def _nft(handle: LabHandle, node: str, script: str) -> None:
    result = handle.exec(node, ["nft", "-f", "-"], timeout=5, input=script)
    assert result.returncode == 0, result.stderr


def test_a_group_tracking_a_service_hands_over_when_the_node_loses_its_endpoints(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario2", start_endpoints=True)
    track = [{"type": "service", "name": "web", "weight": -100}]
    configs = {
        n: _config(tmp_path, n, [_service("web", 80, probe=True)], track=track) for n in NODES
    }
    for node in NODES:
        start_daemon(handle, node, configs[node])
    wait_until("both nodes to allocate", lambda: all(_allocation(handle, n) for n in NODES))
    web = _allocation(handle, "node1")["web"]
    wait_until(
        "node1 active and preferred",
        lambda: (
            roles(handle, NODES) == dict(node1="active", node2="backup")
            and _best_hop(handle, web) == NODE_ADDRESSES["node1"]
        ),
    )

    # node1 alone loses its endpoints (its probes are dropped in its own namespace): the
    # service is down there, node1 drops to 150 - 100 = 50 < 100 and hands over, and only
    # node2 advertises the service
    _nft(handle, "node1", BLOCK)
    wait_until(
        "node2 to take over and be the only path",
        lambda: (
            roles(handle, NODES) == dict(node1="backup", node2="active")
            and web in _on_lo(handle, "node2")
            and web not in _on_lo(handle, "node1")
            and _best_hop(handle, web) == NODE_ADDRESSES["node2"]
        ),
    )
    assert show_ha(handle, "node1")["priority"] == 50

    _nft(handle, "node1", "delete table inet probe_block\n")
    wait_until(
        "node1 to take back over and be preferred again",
        lambda: (
            roles(handle, NODES) == dict(node1="active", node2="backup")
            and _best_hop(handle, web) == NODE_ADDRESSES["node1"]
        ),
    )
