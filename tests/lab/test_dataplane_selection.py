"""Endpoint selection through the real data path: scenario 1, node1's daemon alone (VIP on
its eth0), one-arm services on 192.168.80.200, one per algorithm, each over ep1..ep3. The
client opens short HTTP connections (closed with RST, so a fixed source port can open the next
one at once); the endpoint's name in each answer says where the connection went.

* round robin: 300 connections, 100 per endpoint (within 3%);
* weighted 3:1:1: 300 connections, 180 / 60 / 60 (within 5%);
* hash and Maglev: one 5-tuple always reaches the same endpoint (a fixed source port, several
  times), and 150 source ports reach all three;
* Maglev disruption: removing ep3 (config rewritten, SIGHUP) moves the flows of ep3 and at most
  5% of the flows of ep1 and ep2 (the Maglev table keeps its size when endpoints change);
* persist: each client address (six, on the client's eth0) keeps its endpoint;
* least connections: with three connections held open to ep1, new connections go to ep2 and
  ep3 only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from appliance.lab.api import LabHandle, lab_up
from tests.lab.conftest import dump_logs
from tests.lab.support import dataplane as dp
from tests.lab.support import polling

pytestmark = pytest.mark.lab

VIP = dp.L2_VIP
PORTS = {"roundrobin": 80, "weighted": 81, "hash": 82, "maglev": 83, "persist": 84}
DISRUPT_PORT = 85  # a Maglev service of its own: the disruption test changes its endpoints
LEASTCONN_PORT = dp.ECHO_PORT
WEIGHTS = {"ep1": 3, "ep2": 1, "ep3": 1}
CONNECTIONS = 300
#: fixed client source ports, below the ephemeral range (32768-60999)
SPORTS = list(range(20000, 20150))
CLIENT_ADDRESSES = [f"192.168.80.{n}" for n in range(11, 17)]


def web(name: str, port: int, **options: Any) -> dict[str, Any]:
    return dp.service(name, VIP, port, endpoint_port=dp.HTTP_PORT, **options)


def services(disrupt_endpoints: tuple[str, ...] = dp.ENDPOINTS) -> list[dict[str, Any]]:
    return [
        web("rr", PORTS["roundrobin"]),
        web("weighted", PORTS["weighted"], selection="weighted", weights=WEIGHTS),
        web("hash", PORTS["hash"], selection="hash"),
        web("maglev", PORTS["maglev"], selection="maglev"),
        web("persist", PORTS["persist"], selection="persist", persist_timeout_s=300),
        web("disrupt", DISRUPT_PORT, selection="maglev", endpoints=disrupt_endpoints),
        dp.service("leastconn", VIP, LEASTCONN_PORT, selection="leastconn"),
    ]


@attrs.frozen
class Node:
    handle: LabHandle
    config: Path
    pid: int
    workdir: Path


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One lab and daemon for the module (each test uses its own service)."""
    workdir = tmp_path_factory.mktemp("selection")
    handle = lab_up("scenario1")
    failed = True
    try:
        dp.add_vip(handle)
        config = dp.write_config(workdir / "node1.yaml", "scenario1", services())
        yield Node(handle, config, dp.start_daemon(handle, config), workdir)
        failed = False
    finally:
        if failed:
            dump_logs(handle)
        handle.down()


def spread(node: Node, port: int, count: int) -> Counter[str]:
    results = dp.http_gets(node.handle, VIP, port, count)
    assert not dp.failures(results), dp.failures(results)[:5]
    return dp.names(results)


def endpoint_by_port(node: Node, port: int, sports: list[int]) -> dict[int, str]:
    """Source port -> endpoint, one connection per source port."""
    results = dp.http_gets(node.handle, VIP, port, len(sports), sports=sports)
    assert not dp.failures(results), dp.failures(results)[:5]
    return {int(r["sport"]): str(r["name"]) for r in results}


def within(counts: Counter[str], expected: dict[str, float], tolerance: float) -> bool:
    return all(abs(counts[ep] - n) <= tolerance * n for ep, n in expected.items())


def test_round_robin_is_even(node: Node) -> None:
    counts = spread(node, PORTS["roundrobin"], CONNECTIONS)
    assert within(counts, {ep: CONNECTIONS / 3 for ep in dp.ENDPOINTS}, 0.03), counts


def test_weighted_follows_the_weights(node: Node) -> None:
    counts = spread(node, PORTS["weighted"], CONNECTIONS)
    total = sum(WEIGHTS.values())
    expected = {ep: CONNECTIONS * w / total for ep, w in WEIGHTS.items()}
    assert within(counts, expected, 0.05), counts


@pytest.mark.parametrize("selection", ["hash", "maglev"])
def test_the_same_flow_reaches_the_same_endpoint(node: Node, selection: str) -> None:
    port = PORTS[selection]
    results = dp.http_gets(node.handle, VIP, port, 10, sport=SPORTS[0])
    assert not dp.failures(results), dp.failures(results)
    assert len(dp.names(results)) == 1, dp.names(results)
    first = endpoint_by_port(node, port, SPORTS)
    again = endpoint_by_port(node, port, SPORTS)
    assert first == again
    assert set(first.values()) == set(dp.ENDPOINTS), Counter(first.values())


def test_maglev_removal_moves_only_the_removed_endpoints_flows(node: Node) -> None:
    before = endpoint_by_port(node, DISRUPT_PORT, SPORTS)
    assert set(before.values()) == set(dp.ENDPOINTS), Counter(before.values())
    dp.reload(node.handle, node.pid, node.config, services(disrupt_endpoints=("ep1", "ep2")))
    after = endpoint_by_port(node, DISRUPT_PORT, SPORTS)
    assert set(after.values()) == {"ep1", "ep2"}
    kept = [sport for sport, ep in before.items() if ep != "ep3"]
    moved = [sport for sport in kept if after[sport] != before[sport]]
    assert len(moved) <= 0.05 * len(kept), f"{len(moved)} of {len(kept)} flows moved"


def test_persist_keeps_each_client_on_its_endpoint(node: Node) -> None:
    for address in CLIENT_ADDRESSES:
        dp.sh(node.handle, "client", "ip", "addr", "replace", f"{address}/24", "dev", "eth0")
    rounds = 5
    results = dp.http_gets(
        node.handle,
        VIP,
        PORTS["persist"],
        rounds * len(CLIENT_ADDRESSES),
        sources=CLIENT_ADDRESSES,
    )
    assert not dp.failures(results), dp.failures(results)[:5]
    by_client: dict[str, set[str]] = {}
    for i, result in enumerate(results):
        by_client.setdefault(CLIENT_ADDRESSES[i % len(CLIENT_ADDRESSES)], set()).add(result["name"])
    assert all(len(eps) == 1 for eps in by_client.values()), by_client
    # the first connection of each client was placed by round robin
    assert {ep for eps in by_client.values() for ep in eps} == set(dp.ENDPOINTS), by_client


def test_leastconn_avoids_the_busy_endpoint(node: Node) -> None:
    handle = node.handle
    target = f"{VIP}:{LEASTCONN_PORT}"
    held = dp.Streams(handle, node.workdir, "held", target, 9)
    placed = dp.endpoint_of_ports(handle, held.ports())
    assert Counter(placed.values()) == Counter({ep: 3 for ep in dp.ENDPOINTS}), placed
    held.close(port for port, ep in placed.items() if ep != "ep1")
    # closed at both ends (the endpoint's socket is gone once the client acked its FIN), so
    # node1 saw both FINs and no longer counts them
    polling.wait_for(
        lambda: not any(dp.sockets(handle, ep) for ep in ("ep2", "ep3")),
        "the closed connections to be gone at ep2 and ep3",
        dp.WAIT_S,
    )
    fresh = dp.Streams(handle, node.workdir, "fresh", target, 4)
    try:
        where = dp.endpoint_of_ports(handle, fresh.ports())
        assert Counter(where.values()) == Counter({"ep2": 2, "ep3": 2}), where
        assert len(dp.peer_ports(handle, "ep1")) == 3  # still held
    finally:
        reports = [fresh.stop(), held.stop()]
    assert not any(r["failed"] for r in reports), reports
