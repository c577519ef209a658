"""Helpers of the end-to-end dataplane lab tests: node1's config and daemon, namespace set-up
(VIPs, DSR endpoints, return routes), observations at the endpoints, and the traffic tools.

The traffic tools run *inside* a lab namespace as ``python -m tests.lab.support.dataplane
COMMAND`` (the lab puts this checkout on PYTHONPATH): ``http`` (short HTTP GETs, optionally
from fixed source addresses/ports, each closed with RST so a port can be reused at once),
``udp`` (one echo datagram per source port), ``streams`` (long-lived TCP echo streams with
sequence-numbered messages, steered by a control file) and ``udp-server`` (a UDP echo bound to
one address that answers with its name: the DSR endpoints' UDP service). Every tool is bounded
in count and time and prints a JSON report. Every wait in the tests is a bounded poll.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from appliance.lab.api import LabHandle
from tests.lab.support import polling

EXAMPLES = Path(__file__).parents[3] / "examples"
EP_ADDRESSES = {"ep1": "192.168.80.101", "ep2": "192.168.80.102", "ep3": "192.168.80.103"}
ENDPOINTS = tuple(EP_ADDRESSES)
NODE1 = "192.168.80.252"
L2_VIP = "192.168.80.200"
L3_VIP = "198.51.100.10"
L2_CLIENT = "192.168.80.10"
L3_CLIENT = "203.0.113.10"
CLIENT_NET = "203.0.113.0/24"
HTTP_PORT = 8080
ECHO_PORT = 9000
WAIT_S = 20.0
#: compiling lb.c with bcc takes seconds on a busy 2-core machine
DAEMON_READY_S = 90.0
DAEMON = "node1-daemon"


# --- configs ----------------------------------------------------------------------------------


def service(
    name: str,
    vip: str,
    port: int,
    *,
    protocol: str = "tcp",
    mode: str = "onearm",
    selection: str = "roundrobin",
    endpoint_port: int | None = None,
    endpoints: Sequence[str] = ENDPOINTS,
    weights: dict[str, int] | None = None,
    **extra: object,
) -> dict[str, Any]:
    """A service entry of the config (no probe: every endpoint counts as healthy)."""
    eps: list[dict[str, Any]] = []
    for ep in endpoints:
        entry: dict[str, Any] = {"address": EP_ADDRESSES[ep]}
        if endpoint_port is not None:
            entry["port"] = endpoint_port
        if weights and ep in weights:
            entry["weight"] = weights[ep]
        eps.append(entry)
    body = {"name": name, "vip": vip, "port": port, "protocol": protocol, "mode": mode}
    return {**body, "selection": selection, **extra, "endpoints": eps}


def write_config(path: Path, scenario: str, services: Sequence[dict[str, Any]]) -> Path:
    """node1's config from examples/<scenario>-node1.yaml with ``services`` instead of the
    example's, and without ``ha``, ``bgp`` and ``vip_pools``: node1 runs alone and owns nothing
    by election (the tests make the VIP reach it: an address on eth0 for L2, a static route at
    the router for L3)."""
    example = {"scenario1": "scenario1-l2", "scenario2": "scenario2-bgp-active-backup"}[scenario]
    tree: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{example}-node1.yaml").read_text())
    for section in ("ha", "bgp", "vip_pools"):
        tree.pop(section, None)
    tree["services"] = list(services)
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# --- the daemon -------------------------------------------------------------------------------


def events(handle: LabHandle, name: str = DAEMON) -> list[dict[str, Any]]:
    """The JSON log events of a daemon, in order."""
    lines = handle.log_path(name).read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def events_named(handle: LabHandle, kind: str, name: str = DAEMON) -> list[dict[str, Any]]:
    """A daemon's log events of one kind (``dataplane_loaded``...)."""
    return [e for e in events(handle, name) if e["event"] == kind]


def start_daemon(
    handle: LabHandle, config: Path, name: str = DAEMON, *, share_mounts: bool = False
) -> int:
    """Start node1's daemon; return its pid once the dataplane is attached and programmed.
    ``share_mounts``: its pins live in the host's bpffs and outlive it (a kill-restart test)."""
    argv = [sys.executable, "-m", "appliance", "run", "--config", str(config)]
    pid = handle.spawn("node1", name, [*argv, "--log-format", "json"], share_mounts=share_mounts)
    handle.wait_for_log(name, '"dataplane_ready"', timeout=DAEMON_READY_S)
    handle.wait_for_log(name, '"daemon_ready"', timeout=WAIT_S)
    return pid


def reload(handle: LabHandle, pid: int, config: Path, services: Sequence[dict[str, Any]]) -> None:
    """Rewrite the config's services and SIGHUP the daemon; return once it applied the
    reload and reconciled the maps after it."""
    tree = yaml.safe_load(config.read_text())
    tree["services"] = list(services)
    config.write_text(yaml.safe_dump(tree, sort_keys=False))
    before = len(events(handle))
    os.kill(pid, signal.SIGHUP)

    def reconciled() -> bool:
        kinds = [e["event"] for e in events(handle)[before:]]
        if "reload_rejected" in kinds:
            raise AssertionError(f"reload rejected: {events(handle)[before:]}")
        # logged once every service answered the new generation: the maps are programmed
        return "reload_applied" in kinds

    polling.wait_for(reconciled, "the reload to be applied and reconciled", WAIT_S)


def l2_node(
    lab_factory: Callable[..., LabHandle],
    tmp_path: Path,
    services: Sequence[dict[str, Any]],
    *,
    share_mounts: bool = False,
) -> tuple[LabHandle, Path, int]:
    """Scenario 1 with the VIP on node1's eth0 and node1's daemon running ``services``:
    (lab, config file, daemon pid)."""
    handle = lab_factory("scenario1")
    add_vip(handle)
    config = write_config(tmp_path / "node1.yaml", "scenario1", services)
    return handle, config, start_daemon(handle, config, share_mounts=share_mounts)


# --- namespace set-up -------------------------------------------------------------------------


def sh(handle: LabHandle, host: str, *argv: str) -> str:
    result = handle.exec(host, list(argv), timeout=10)
    assert result.returncode == 0, f"{host}: {' '.join(argv)}: {result.stderr}"
    return result.stdout


def add_vip(handle: LabHandle, host: str = "node1", vip: str = L2_VIP) -> None:
    """Put ``vip`` on ``host``'s eth0 (what the HA master would do), so it answers its ARP."""
    sh(handle, host, "ip", "addr", "replace", f"{vip}/32", "dev", "eth0")


def make_dsr_endpoints(handle: LabHandle, vip: str = L2_VIP) -> None:
    """Each endpoint accepts ``vip`` (on lo) without answering ARP for it (arp_ignore=1,
    arp_announce=2 on eth0 and all)."""
    for ep in ENDPOINTS:
        sh(handle, ep, "ip", "addr", "replace", f"{vip}/32", "dev", "lo")
        for scope in ("all", "eth0"):
            sh(handle, ep, "sysctl", "-qw", f"net.ipv4.conf.{scope}.arp_ignore=1")
            sh(handle, ep, "sysctl", "-qw", f"net.ipv4.conf.{scope}.arp_announce=2")


def route_default_mode(handle: LabHandle) -> None:
    """Scenario 2 for DEFAULT mode: the router sends the VIP to node1 (static, no BGP), and the
    endpoints send replies to the client subnet back through node1."""
    sh(handle, "router", "ip", "route", "replace", f"{L3_VIP}/32", "via", NODE1)
    for ep in ENDPOINTS:
        sh(handle, ep, "ip", "route", "replace", CLIENT_NET, "via", NODE1)


# --- observations at the endpoints ------------------------------------------------------------


def peers(handle: LabHandle, ep: str, port: int = ECHO_PORT) -> set[tuple[str, int]]:
    """(address, port) of the remote ends of the established TCP connections to ``ep``'s
    ``port``."""
    out = sh(handle, ep, "ss", "-Htn", "state", "established", f"( sport = :{port} )")
    found: set[tuple[str, int]] = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            address, remote_port = fields[-1].rsplit(":", 1)
            found.add((address, int(remote_port)))
    return found


def sockets(handle: LabHandle, ep: str, port: int = ECHO_PORT) -> list[str]:
    """``ep``'s TCP sockets on ``port`` in any connected state (closing ones too)."""
    out = sh(handle, ep, "ss", "-Htn", "state", "connected", f"( sport = :{port} )")
    return out.splitlines()


def peer_ports(handle: LabHandle, ep: str, port: int = ECHO_PORT) -> set[int]:
    """Remote ports of the established TCP connections to ``ep``'s ``port``."""
    return {remote_port for _, remote_port in peers(handle, ep, port)}


def endpoint_of_ports(handle: LabHandle, ports: Iterable[int]) -> dict[int, str]:
    """Client port -> endpoint holding that connection (one-arm and default keep the client's
    port towards the endpoint)."""
    wanted = set(ports)
    out: dict[int, str] = {}
    for ep in ENDPOINTS:
        for port in peer_ports(handle, ep) & wanted:
            out[port] = ep
    return out


def udp_in_datagrams(handle: LabHandle) -> dict[str, int]:
    """Endpoint -> ``Udp: InDatagrams`` of its namespace."""
    out: dict[str, int] = {}
    for ep in ENDPOINTS:
        lines = [ln.split() for ln in sh(handle, ep, "cat", "/proc/net/snmp").splitlines()]
        header, values = [ln for ln in lines if ln and ln[0] == "Udp:"][:2]
        out[ep] = int(values[header.index("InDatagrams")])
    return out


# --- running the tools ------------------------------------------------------------------------


def tool_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.lab.support.dataplane", command, *args]


def run_tool(
    handle: LabHandle, command: str, *args: str, host: str = "client", timeout: float = 120
) -> dict[str, Any]:
    result = handle.exec(host, tool_argv(command, *args), timeout=timeout)
    assert result.returncode == 0, f"{command} failed: {result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def http_gets(
    handle: LabHandle,
    vip: str,
    port: int,
    count: int,
    *,
    sources: Sequence[str] = (),
    sport: int | None = None,
    sports: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """``count`` GETs to ``vip:port`` from the client, in order; each result has ``ok``,
    ``name`` (the endpoint's), ``peer``, ``error``. ``sources``: the source addresses, in turn;
    ``sport``: one fixed source port; ``sports``: the source ports, in turn."""
    args = [f"--target={vip}:{port}", f"--count={count}"]
    args += [f"--source={s}" for s in sources]
    if sport is not None:
        args.append(f"--sport={sport}")
    args += [f"--sport={p}" for p in sports]
    results: list[dict[str, Any]] = run_tool(handle, "http", *args)["results"]
    return results


def names(results: Iterable[dict[str, Any]]) -> Counter[str]:
    return Counter(str(r["name"]) for r in results if r["ok"])


def failures(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if not r["ok"]]


class ToolRun:
    """A traffic tool spawned in a lab namespace that reports through a status JSON file and
    takes commands from a control file (both in ``workdir``)."""

    def __init__(self, handle: LabHandle, workdir: Path, name: str) -> None:
        self.handle = handle
        self.name = name
        self.status_path = workdir / f"{name}.status.json"
        self.control_path = workdir / f"{name}.control.json"

    def spawn(self, argv: Sequence[str], host: str = "client") -> None:
        self.handle.spawn(host, self.name, list(argv))

    def status(self) -> dict[str, Any] | None:
        try:
            value: dict[str, Any] = json.loads(self.status_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return value

    def describe(self) -> str:
        return f"{self.status()}\n{self.log()}"

    def log(self) -> str:
        return self.handle.log_tail(self.name, 10)

    def wait(
        self,
        what: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = WAIT_S,
        interval: float = polling.POLL_INTERVAL,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            status = self.status()
            return status if status is not None and predicate(status) else None

        return polling.wait_for(probe, what, timeout, describe=self.describe, interval=interval)

    def control(self, **command: Any) -> None:
        tmp = self.control_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(command))
        tmp.replace(self.control_path)


class Streams(ToolRun):
    """A ``streams`` tool running in the client: long-lived echo connections to ``target``,
    one sequence-numbered message per stream per round, until told to stop."""

    def __init__(
        self, handle: LabHandle, workdir: Path, name: str, target: str, count: int
    ) -> None:
        super().__init__(handle, workdir, name)
        self.spawn(
            tool_argv(
                "streams",
                f"--target={target}",
                f"--count={count}",
                f"--status={self.status_path}",
                f"--control={self.control_path}",
            )
        )
        self.wait("the streams to connect", lambda s: s["rounds"] >= 1)

    def ports(self) -> list[int]:
        status = self.status()
        assert status is not None
        return [int(s["port"]) for s in status["streams"]]

    def advance(self, rounds: int, what: str) -> dict[str, Any]:
        """Wait until ``rounds`` more rounds completed (every stream echoed once per round)."""
        status = self.status()
        assert status is not None
        start = int(status["rounds"])
        return self.wait(what, lambda s: s["rounds"] >= start + rounds or s["done"])

    def close(self, ports: Iterable[int]) -> None:
        wanted = sorted(ports)
        self.control(close=wanted)
        self.wait(f"streams {wanted} closed", lambda s: set(wanted) <= set(s["closed"]))

    def stop(self) -> dict[str, Any]:
        """Stop the tool; its final report."""
        self.control(stop=True)
        return self.wait("the streams to stop", lambda s: s["done"])


# --- the tools (run inside a namespace) ---------------------------------------------------------

_RST_LINGER = struct.pack("ii", 1, 0)
_TIMEOUT_S = 3.0


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _http_get(target: tuple[str, int], source: str, sport: int) -> dict[str, Any]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.settimeout(_TIMEOUT_S)
    out: dict[str, Any] = {"ok": False, "name": "", "peer": "", "error": "", "sport": sport}
    try:
        sock.bind((source, sport))
        out["sport"] = sock.getsockname()[1]
        sock.connect(target)
        host, port = sock.getpeername()
        out["peer"] = f"{host}:{port}"
        sock.sendall(b"GET / HTTP/1.0\r\nHost: triolb\r\n\r\n")
        data = b""
        while len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 200"):
            out.update(ok=True, name=body.decode().strip())
        else:
            out["error"] = f"bad response {head[:40]!r}"
    except OSError as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        # RST: no TIME_WAIT anywhere, so the same source port can open the next connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST_LINGER)
        sock.close()
    return out


def _cmd_http(args: argparse.Namespace) -> dict[str, Any]:
    target = _address(args.target)
    sources, sports = args.source or [""], args.sport or [0]
    results = [
        _http_get(target, sources[i % len(sources)], sports[i % len(sports)])
        for i in range(args.count)
    ]
    return {"results": results}


def _cmd_udp(args: argparse.Namespace) -> dict[str, Any]:
    """One datagram per fresh socket (a new flow each); the reply must come from the target."""
    target = _address(args.target)
    results: list[dict[str, Any]] = []
    for i in range(args.count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_TIMEOUT_S)
            payload = f"triolb-udp-{i}".encode()
            out: dict[str, Any] = {"ok": False, "reply": "", "from": "", "error": ""}
            try:
                sock.sendto(payload, target)
                data, peer = sock.recvfrom(2048)
                out["reply"] = data.decode(errors="replace")
                out["from"] = f"{peer[0]}:{peer[1]}"
                out["ok"] = peer == target and (data == payload or args.named)
            except OSError as exc:
                out["error"] = f"{type(exc).__name__}: {exc}"
            results.append(out)
    return {"results": results}


def _cmd_udp_server(args: argparse.Namespace) -> dict[str, Any]:
    """Answer every datagram with this endpoint's name, from ``--bind`` (bounded in time)."""
    served = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(_address(args.bind))
        print("listening", flush=True)
        deadline = time.monotonic() + args.duration
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(min(left, 1.0))
            try:
                _, peer = sock.recvfrom(2048)
            except TimeoutError:
                continue
            sock.sendto(args.name.encode(), peer)
            served += 1
    return {"served": served}


class _Stream:
    """One echo connection: sends ``<seq> <stream>`` lines, checks each echo in order."""

    def __init__(self, index: int, target: tuple[str, int]) -> None:
        self.index = index
        self.sock = socket.create_connection(target, timeout=_TIMEOUT_S)
        self.port: int = self.sock.getsockname()[1]
        self.sent = self.echoed = 0
        self.buffer = b""
        self.error = ""
        self.closed = False

    def exchange(self) -> None:
        message = f"{self.sent} {self.index} triolb\n".encode()
        try:
            self.sock.sendall(message)
            self.sent += 1
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionResetError("eof")
                self.buffer += chunk
        except OSError as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        line, _, self.buffer = self.buffer.partition(b"\n")
        if line + b"\n" != message:
            self.error = f"expected {message!r}, got {line!r}"
            return
        self.echoed += 1

    def close(self) -> None:
        self.sock.close()
        self.closed = True

    def report(self) -> dict[str, Any]:
        return {"port": self.port, "sent": self.sent, "echoed": self.echoed, "error": self.error}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def _cmd_streams(args: argparse.Namespace) -> dict[str, Any]:
    """``--count`` connections opened one after the other, then rounds (one message per open
    stream) every ``--interval`` s until the control file says stop or ``--max-seconds``. A
    stream with an error (reset, timeout, wrong echo) is closed and reported."""
    target = _address(args.target)
    status, control = Path(args.status), Path(args.control)
    streams = [_Stream(i, target) for i in range(args.count)]
    deadline = time.monotonic() + args.max_seconds
    rounds, stop = 0, False
    report: dict[str, Any] = {}
    while True:
        try:
            command = json.loads(control.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            command = {}
        stop = bool(command.get("stop")) or time.monotonic() >= deadline
        for s in streams:
            if s.port in command.get("close", ()) and not s.closed:
                s.close()
        live = [s for s in streams if not s.closed and not s.error]
        if not stop:
            for s in live:
                s.exchange()
                if s.error:
                    s.close()
            rounds += 1
        report = {
            "rounds": rounds,
            "streams": [s.report() for s in streams],
            "closed": [s.port for s in streams if s.closed and not s.error],
            "failed": [s.report() for s in streams if s.error],
            "done": stop,
        }
        _write_json(status, report)
        if stop:
            break
        time.sleep(args.interval)
    for s in streams:
        if not s.closed:
            s.close()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.lab.support.dataplane")
    sub = parser.add_subparsers(dest="command", required=True)
    http = sub.add_parser("http")
    http.add_argument("--target", required=True)
    http.add_argument("--count", type=int, required=True, choices=range(1, 2001))
    http.add_argument("--source", action="append")
    http.add_argument("--sport", action="append", type=int)
    udp = sub.add_parser("udp")
    udp.add_argument("--target", required=True)
    udp.add_argument("--count", type=int, required=True, choices=range(1, 2001))
    udp.add_argument("--named", action="store_true", help="replies carry a name, not the data")
    server = sub.add_parser("udp-server")
    server.add_argument("--bind", required=True)
    server.add_argument("--name", required=True)
    server.add_argument("--duration", type=float, default=300.0)
    streams = sub.add_parser("streams")
    streams.add_argument("--target", required=True)
    streams.add_argument("--count", type=int, required=True, choices=range(1, 101))
    streams.add_argument("--status", required=True)
    streams.add_argument("--control", required=True)
    streams.add_argument("--interval", type=float, default=0.02)
    streams.add_argument("--max-seconds", type=float, default=300.0)
    args = parser.parse_args(argv)
    commands = {
        "http": _cmd_http,
        "udp": _cmd_udp,
        "udp-server": _cmd_udp_server,
        "streams": _cmd_streams,
    }
    print(json.dumps(commands[args.command](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
