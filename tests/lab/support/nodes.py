"""Appliance nodes for the BGP interop tests: configs derived from the examples, and the
`bgp_node` harness (speaker + intent controller) run inside a lab node's namespace.

    nodes = NodeSet(handle, tmp_path)
    doc = example_config(SCENARIO2, "node1")
    node1 = nodes.start("node1", write_config(tmp_path, "node1", doc), roles={1: "active"})
    node1.wait_established("192.168.80.254")
    node1.control(roles={1: "backup"})
    nodes.close()                       # SIGTERM to every harness still running
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from appliance.config import load_config
from appliance.lab.api import LabHandle
from appliance.lab.procs import python_module_argv
from appliance.lab.scenarios import NODE_ADDRESSES, ROUTER_CLUSTER_ADDRESS
from tests.lab.support.polling import DEFAULT_TIMEOUT, wait_for

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SCENARIO2 = "scenario2-bgp-active-backup"
SCENARIO3 = "scenario3-bgp-ecmp"

ROUTER = ROUTER_CLUSTER_ADDRESS
NODE1, NODE2 = NODE_ADDRESSES["node1"], NODE_ADDRESSES["node2"]
#: The cluster segment's IPv6 addressing (inside the lab namespaces only).
CLUSTER6_PREFIXLEN = 64
ROUTER6 = "fd00:80::254"
NODE6 = {"node1": "fd00:80::252", "node2": "fd00:80::253"}
#: The examples' VIP route, and an IPv6 VIP for the IPv6 tests.
VIP = "198.51.100.10/32"
VIP6_ADDRESS = "fd00:198:51:100::10"
VIP6 = f"{VIP6_ADDRESS}/128"
#: 4-octet AS numbers (above 65535) for the appliance and the router.
APPLIANCE_AS4, ROUTER_AS4 = 4200000100, 4200000101
#: HA roles of the examples' single group, as the control file takes them.
ACTIVE, BACKUP = {1: "active"}, {1: "backup"}
KERNEL_PROTO = "201"  # bgp.kernel_routes.PROTO

ConfigDoc = dict[str, Any]


# --- configs -------------------------------------------------------------------------------------


def example_config(scenario: str, node: str) -> ConfigDoc:
    """The example config of ``node`` in ``scenario`` (e.g. ``SCENARIO2``) as a plain dict."""
    doc: ConfigDoc = yaml.safe_load((EXAMPLES / f"{scenario}-{node}.yaml").read_text())
    return doc


def write_config(workdir: Path, node: str, doc: ConfigDoc) -> Path:
    """Write ``doc`` as ``<workdir>/<node>.yaml`` next to a copy of the examples' secrets and
    validate it here (a bad test config fails in the test, not in the harness's log)."""
    shutil.copytree(EXAMPLES / "secrets", workdir / "secrets", dirs_exist_ok=True)
    path = workdir / f"{node}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_config(path)
    return path


def write_secret(workdir: Path, name: str, content: str) -> str:
    """A secret file under ``<workdir>/secrets`` (mode 0600); returns its config-relative path."""
    path = workdir / "secrets" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content + "\n")
    path.chmod(0o600)
    return f"secrets/{name}"


def router_peer(doc: ConfigDoc) -> dict[str, Any]:
    """The BGP peer of an example config: the lab router (IPv4)."""
    peers: list[dict[str, Any]] = doc["bgp"]["peers"]
    (peer,) = [p for p in peers if p["address"] == ROUTER]
    return peer


def set_asns(doc: ConfigDoc, local_as: int, router_as: int) -> ConfigDoc:
    """The node's AS and that of its router peer(s)."""
    doc["bgp"]["asn"] = local_as
    for peer in doc["bgp"]["peers"]:
        peer["asn"] = router_as
    return doc


def ipv6_config(router_as: int, with_ipv4_vip: bool) -> ConfigDoc:
    """Scenario 3's node1 (no HA: every VIP is advertised as active) with a second peer, the
    router over IPv6, and an IPv6 service ``web6`` on VIP6 (next to the example's IPv4
    services, or instead of them)."""
    doc = example_config(SCENARIO3, "node1")
    doc["bgp"]["peers"].append(
        {"address": ROUTER6, "asn": router_as, "hold_time": 9, "description": "router, IPv6"}
    )
    web6 = {
        "name": "web6",
        "vip": VIP6_ADDRESS,
        "port": 80,
        "endpoints": [{"address": "fd00:80::101", "port": 8080}],
    }
    doc["services"] = [*doc["services"], web6] if with_ipv4_vip else [web6]
    return doc


# --- lab plumbing ----------------------------------------------------------------------------


def add_cluster_ipv6(handle: LabHandle, hosts: tuple[str, ...] = ("router", "node1")) -> None:
    """Give ``hosts`` their fd00:80::/64 address on the cluster segment (inside the lab)."""
    for host in hosts:
        address = ROUTER6 if host == "router" else NODE6[host]
        ifname = "eth1" if host == "router" else "eth0"
        argv = ["ip", "-6", "addr", "replace", f"{address}/{CLUSTER6_PREFIXLEN}"]
        handle.exec(host, [*argv, "dev", ifname, "nodad"], timeout=10, check=True)


def kernel_routes(handle: LabHandle, host: str, proto: str | None = None) -> list[dict[str, Any]]:
    """``host``'s IPv4 main-table routes (``ip -N -j route``), optionally of one protocol."""
    argv = ["ip", "-N", "-j", "-4", "route", "show"]
    result = handle.exec(host, [*argv, *(["proto", proto] if proto else [])], timeout=10)
    assert result.returncode == 0, result.stderr
    routes: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return routes


def router_kernel_route(handle: LabHandle, destination: str, family: str = "-4") -> dict[str, Any]:
    """The router namespace's kernel route for ``destination`` ({} when there is none)."""
    argv = ["ip", "-j", family, "route", "show", destination]
    result = handle.exec("router", argv, timeout=10)
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return found[0] if found else {}


def route_gateways(route: Mapping[str, Any]) -> set[str]:
    """Next hops of one ``ip -j route`` entry (single or multipath)."""
    if "nexthops" in route:
        return {hop["gateway"] for hop in route["nexthops"]}
    return {route["gateway"]} if "gateway" in route else set()


# --- the harness ---------------------------------------------------------------------------------


class BgpNode:
    """One `bgp_node` harness process in a lab node (start, stop, control, status)."""

    def __init__(self, handle: LabHandle, host: str, config: Path, workdir: Path) -> None:
        self.handle = handle
        self.host = host
        self.config = config
        self.name = f"{host}-bgp"
        self.control_path = workdir / f"{host}-control.json"
        self.status_path = workdir / f"{host}-status.json"
        self.pid: int | None = None
        self._control: dict[str, Any] = {}

    @property
    def log_path(self) -> Path:
        return self.handle.log_dir / f"{self.name}.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # --- process ---------------------------------------------------------------------------

    def start(self, roles: Mapping[int, str] | None = None) -> None:
        if roles is not None:
            self._control["roles"] = {str(group): role for group, role in roles.items()}
        self._control.pop("shutdown", None)
        self._write_control()
        self.status_path.unlink(missing_ok=True)
        argv = python_module_argv(
            "tests.lab.support.bgp_node",
            f"--config={self.config}",
            f"--control={self.control_path}",
            f"--status={self.status_path}",
        )
        self.pid = self.handle.spawn(self.host, self.name, argv)
        self.handle.wait_for_log(self.name, f"bgp_node_ready pid={self.pid}", DEFAULT_TIMEOUT)

    @property
    def running(self) -> bool:
        return self.pid is not None and self.handle.alive(self.name)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 3 s) and wait until the process is gone."""
        if self.pid is not None:
            self.handle.stop(self.name)
            self.pid = None

    def stopped_cleanly(self, pid: int) -> bool:
        """Whether the harness that had ``pid`` ran its own exit path (not SIGKILLed)."""
        return f"bgp_node_stopped pid={pid}" in self.log_text()

    # --- control ---------------------------------------------------------------------------

    def control(
        self, *, roles: Mapping[int, str] | None = None, shutdown: str | None = None
    ) -> None:
        """Update the control file: HA roles (group -> role) and/or an administrative
        shutdown with a communication."""
        if roles is not None:
            self._control["roles"] = {str(group): role for group, role in roles.items()}
        if shutdown is not None:
            self._control["shutdown"] = shutdown
        self._write_control()

    def _write_control(self) -> None:
        tmp = self.control_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._control))
        tmp.replace(self.control_path)

    # --- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The current harness's last status ({} before the first one)."""
        try:
            doc: dict[str, Any] = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if doc.get("pid") == self.pid else {}

    def neighbor(self, address: str) -> dict[str, Any]:
        found: dict[str, Any] = self.status().get("neighbors", {}).get(f"bgp/neighbor/{address}")
        return found or {}

    def wait_neighbor(
        self,
        address: str,
        check: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Wait until ``check`` holds for the speaker's status of neighbour ``address``."""

        def probe() -> dict[str, Any] | None:
            neighbor = self.neighbor(address)
            return neighbor if neighbor and check(neighbor) else None

        found = wait_for(
            probe,
            f"{self.host}: {what}",
            timeout,
            lambda: f"{self.neighbor(address)}\n{self.log_tail()}",
        )
        return found

    def wait_established(self, address: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return self.wait_neighbor(
            address, lambda n: n.get("state") == "Established", f"{address} Established", timeout
        )


class NodeSet:
    """The harnesses of one test; `close` stops them and removes their kernel routes."""

    def __init__(self, handle: LabHandle, workdir: Path) -> None:
        self.handle = handle
        self.workdir = workdir
        self.nodes: dict[str, BgpNode] = {}

    def start(self, host: str, config: Path, roles: Mapping[int, str] | None = None) -> BgpNode:
        node = self.nodes.get(host)
        if node is None or node.config != config:
            if node is not None:
                node.stop()
            node = self.nodes[host] = BgpNode(self.handle, host, config, self.workdir)
        node.start(roles)
        return node

    def close(self, dump_logs: bool = False) -> None:
        for node in self.nodes.values():
            node.stop()
            for family in ("-4", "-6"):
                argv = ["ip", family, "route", "flush", "proto", KERNEL_PROTO]
                self.handle.exec(node.host, argv, timeout=10)
            if dump_logs:
                print(f"--- {node.name} ({node.log_path}) ---\n{node.log_tail()}")


def tcp_md5_failures(handle: LabHandle, host: str) -> int:
    """``TcpExt: TCPMD5Failure`` of ``host``'s namespace: segments dropped for a wrong
    signature (/proc/net/netstat is per network namespace)."""
    result = handle.exec(host, ["cat", "/proc/net/netstat"], timeout=10, check=True)
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("TcpExt:")]
    header, values = rows[0], rows[1]
    return int(values[header.index("TCPMD5Failure")])
