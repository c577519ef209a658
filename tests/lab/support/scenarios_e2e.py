"""Helpers of the seed scenarios' end-to-end lab tests (tests/lab/test_scenario1..3.py).

Each test runs both nodes' daemons on the shipped ``examples/`` configs (copied to the test's
directory with their secret paths made absolute), sends client traffic through the VIP, breaks
a node and watches the rest of the system (HA roles, the client's neighbour entry, BIRD's
routes) follow. What this module adds to the other support modules:

- ``example_config``: any scenario's example for a node, secrets made absolute, optional
  overrides of timings only;
- ``HttpLoop``: ``appliance.lab.traffic.http_loop`` run in the background in the client for a
  fixed time, so a failover's error window is measured while the test watches;
- ``timed``: a bounded poll that also says when (wall clock) and after how long it succeeded,
  for the figures the tests print (never assert on);
- ``event_time``: a daemon's JSON log event as a wall-clock time;
- ``route_replies_by_bgp``: scenario 2's return path. Its services are in default mode (DNAT
  only): an endpoint answers the client's own address, so the reply must pass through the node
  holding the flow's NAT state, the active one. The lab's endpoints route everything through
  the router; this makes the router send the endpoints' replies to the client subnet to
  whichever node its best BGP path for the VIP goes to (a BIRD static route with a recursive
  next hop, the VIP, exported into a kernel table that a source rule selects), so the return
  path follows every failover by itself.
"""

from __future__ import annotations

import calendar
import json
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from appliance.lab import bird
from appliance.lab.api import LabHandle
from appliance.lab.examples import copy_example, daemon_argv
from appliance.lab.scenarios import ENDPOINT_ADDRESSES, L3_CLIENT_ADDRESS
from appliance.lab.state import save_state
from tests.lab.support import ctsync as cs
from tests.lab.support import nodes, polling
from tests.lab.support.bird_configs import router_config, stop_bird

T = TypeVar("T")

EXAMPLES = Path(__file__).parents[3] / "examples"
SCENARIO1 = "scenario1-l2"
SCENARIO2 = "scenario2-bgp-active-backup"
SCENARIO3 = "scenario3-bgp-ecmp"
NODES = cs.NODES
NODE_ADDRESSES = cs.NODE_ADDRESSES
L3_VIP = cs.VIP
WEB_PORT = 80  # the examples' web service: VIP:80 -> endpoints' HTTP on 8080
CLIENT_NET = f"{L3_CLIENT_ADDRESS.rsplit('.', 1)[0]}.0/24"
#: the router's kernel table for the endpoints' replies (scenario 2)
RETURN_TABLE = 100
WAIT_S = cs.WAIT_S
FAILOVER_S = cs.FAILOVER_S


# --- configs and daemons -----------------------------------------------------------------------


def example_config(
    tmp_path: Path, scenario: str, node: str, ha_timings: Mapping[str, Any] | None = None
) -> Path:
    """examples/<scenario>-<node>.yaml written to ``tmp_path/<node>.yaml`` with its secret
    files (HA key, sync key, web token) as absolute paths; ``ha_timings`` (e.g.
    ``{"advert_interval_ms": 100}``) overrides keys of every HA group, for timings only."""
    return copy_example(scenario, node, tmp_path, ha_overrides=ha_timings)


def daemon_name(node: str) -> str:
    return f"{node}-daemon"


def start_daemons(
    handle: LabHandle, configs: Mapping[str, Path], *, share_mounts: bool = False
) -> dict[str, int]:
    """Start every node's daemon (they compile at once), wait until all are ready; node ->
    pid. ``share_mounts``: with the host's mounts, so ``dataplane flush`` reaches a killed
    daemon's pins."""
    pids = {
        node: spawn_daemon(handle, node, config, share_mounts) for node, config in configs.items()
    }
    for node in configs:
        cs.wait_daemon_ready(handle, daemon_name(node))
    return pids


def spawn_daemon(handle: LabHandle, node: str, config: Path, share_mounts: bool) -> int:
    return handle.spawn(node, daemon_name(node), daemon_argv(config), share_mounts=share_mounts)


def event_time(event: Mapping[str, Any]) -> float:
    """A JSON log event's ``ts`` (``2026-11-26T16:01:02.345Z``, UTC) as a Unix time."""
    stamp = str(event["ts"]).removesuffix("Z")
    whole, _, millis = stamp.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000


def ha_changes(handle: LabHandle, node: str, new: str, since: float) -> list[float]:
    """When ``node``'s HA group entered state ``new`` (``master``, ``backup``...) at or after
    Unix time ``since``."""
    found = cs.events_named(handle, daemon_name(node), "ha_state")
    return [t for e in found if e["new"] == new and (t := event_time(e)) >= since - 0.001]


# --- timing ------------------------------------------------------------------------------------


def timed(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = WAIT_S,
    describe: Callable[[], str] | None = None,
    interval: float = 0.1,
) -> tuple[T, float]:
    """``polling.wait_for`` that also returns the Unix time at which ``probe`` first
    succeeded (as seen by this poll: up to ``interval`` plus one probe late)."""
    value = polling.wait_for(probe, what, timeout, describe, interval)
    return value, time.time()


def figure(label: str, seconds: float) -> str:
    line = f"FIGURE {label}: {seconds:.3f} s"
    print(line)
    return line


# --- client traffic ----------------------------------------------------------------------------


class HttpLoop:
    """``http_loop`` in the client for ``duration`` seconds against ``url``: one request at a
    time, every ``interval`` s, each with a ``timeout``; its JSON report (per-endpoint counts,
    failures, error windows in seconds since its start, ``started_at``) once it has ended. The
    report goes to the lab's log directory (a test's tmp_path may be pruned by a concurrent
    pytest session)."""

    def __init__(
        self,
        handle: LabHandle,
        name: str,
        url: str,
        duration: float,
        *,
        interval: float = 0.05,
        timeout: float = 1.0,
    ) -> None:
        self.handle = handle
        self.name = name
        self.duration = duration
        self.output = handle.log_dir / f"{name}.json"
        argv = [sys.executable, "-m", "appliance.lab.traffic.http_loop", url]
        argv += [f"--duration={duration}", f"--interval={interval}", f"--timeout={timeout}"]
        handle.spawn("client", name, [*argv, f"--output={self.output}"])
        self.spawned_at = time.time()

    def report(self) -> dict[str, Any]:
        """Wait for the loop to end (bounded: its duration plus a margin); its report."""
        polling.wait_for(
            lambda: not self.handle.alive(self.name),
            f"{self.name} to finish",
            self.duration + WAIT_S,
            lambda: self.handle.log_tail(self.name),
            interval=0.25,
        )
        assert self.output.exists(), (
            f"{self.name} wrote no report:\n{self.handle.log_tail(self.name)}"
        )
        report: dict[str, Any] = json.loads(self.output.read_text())
        return report


def outage(report: Mapping[str, Any], label: str, since: float | None = None) -> dict[str, Any]:
    """Print the loop's failures and error windows (as Unix-time offsets from ``since``, e.g.
    the moment a node was broken); returns the figures."""
    origin = float(report["started_at"])
    shift = origin - since if since is not None else 0.0
    windows = [
        {**w, "start_s": round(w["start_s"] + shift, 3), "end_s": round(w["end_s"] + shift, 3)}
        for w in report["error_windows"]
    ]
    figures = {
        "requests": report["requests"],
        "failed": report["failed"],
        "errors": report["errors"],
        "by_endpoint": report["by_endpoint"],
        "longest_error_window_s": report["longest_error_window_s"],
        "error_windows_since_break": windows,
    }
    print(f"FIGURE {label}: {json.dumps(figures)}")
    return figures


# --- BIRD and the router -----------------------------------------------------------------------


def router_gateways(handle: LabHandle) -> set[str]:
    """The next hops of the router's kernel route for the L3 VIP (ECMP: several)."""
    return nodes.route_gateways(nodes.router_kernel_route(handle, L3_VIP))


RETURN_BIRD = """
ipv4 table returns4;

protocol static returns {{
  ipv4 {{ table returns4; }};
  igp table master4;
  route {client_net} recursive {vip};
}}

protocol kernel kreturns {{
  ipv4 {{ table returns4; import none; export all; }};
  kernel table {table};
}}
"""


def route_replies_by_bgp(handle: LabHandle) -> None:
    """Scenario 2 (default mode): the endpoints' replies to the client subnet go to the node
    the router's best BGP path for the VIP points at. BIRD is restarted with the lab's usual
    config (a session per node) plus a static route for the client subnet whose next hop is
    resolved recursively through the VIP's BGP route, exported into kernel table
    ``RETURN_TABLE``; a rule selects that table for packets from the endpoints to the client
    subnet; redirects are off (else the router would tell the endpoints to send straight to
    the node of the moment, and they would keep it after a failover)."""
    config = router_config(*bird.bird_config_for(handle.topology).neighbors)
    extra = RETURN_BIRD.format(client_net=CLIENT_NET, vip=L3_VIP, table=RETURN_TABLE)
    stop_bird(handle)
    record, socket = bird.start_bird_with(
        handle.ns("router"), bird.render_bird_conf(config) + extra, handle.log_dir
    )
    handle.state.processes.append(record)
    handle.state.bird_socket = socket
    save_state(handle.state)
    for scope in ("all", "eth1"):
        _router(handle, "sysctl", "-qw", f"net.ipv4.conf.{scope}.send_redirects=0")
    for address in ENDPOINT_ADDRESSES.values():
        _router(
            handle, "ip", "rule", "add", "from", address, "iif", "eth1", "to", CLIENT_NET,
            "lookup", str(RETURN_TABLE), "pref", "100",
        )  # fmt: skip


def return_gateway(handle: LabHandle) -> set[str]:
    """The next hops of the router's return route for the endpoints' replies (scenario 2)."""
    argv = ["ip", "-j", "-4", "route", "show", "table", str(RETURN_TABLE), CLIENT_NET]
    result = handle.exec("router", argv, timeout=10)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return nodes.route_gateways(found[0]) if found else set()


def _router(handle: LabHandle, *argv: str) -> None:
    result = handle.exec("router", list(argv), timeout=10)
    assert result.returncode == 0, f"router: {' '.join(argv)}: {result.stderr}"


def advertised(config: Path, role: str) -> tuple[int, list[int]]:
    """The MED and AS path a node's config makes BIRD see for its ``role`` (``active`` or
    ``backup``): ``bgp.advertise.<role>``'s MED, the local AS once plus ``prepend`` times."""
    bgp = yaml.safe_load(config.read_text())["bgp"]
    attrs = bgp["advertise"][role]
    return int(attrs["med"]), [int(bgp["asn"])] * (1 + int(attrs.get("prepend", 0)))


def routes_by_node(handle: LabHandle) -> dict[str, tuple[int | None, list[int], bool]]:
    """BIRD's routes for the L3 VIP by the node they go via: (MED, AS path, best)."""
    by_address = {address: node for node, address in NODE_ADDRESSES.items()}
    out: dict[str, tuple[int | None, list[int], bool]] = {}
    for route in cs.bird_routes(handle):
        for hop in route.via:
            out[by_address.get(hop, hop)] = (route.med, route.as_path, route.primary)
    return out


def best_via(handle: LabHandle, node: str, med: int, as_path: list[int]) -> bool:
    """BIRD's best route for the VIP goes via ``node`` with these attributes."""
    best = cs.bird_best(handle)
    return (
        best is not None
        and NODE_ADDRESSES[node] in best.via
        and best.med == med
        and best.as_path == as_path
    )
