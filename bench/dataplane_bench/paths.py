"""The lab's addresses for this benchmark and the plumbing that puts node1 on the path.

Scenario 2 lab, without BIRD or the endpoint servers: client 203.0.113.10 behind the router
(203.0.113.1 / 192.168.80.254); node1 192.168.80.252 is the load balancer; ep1..ep3
192.168.80.101-103 are the endpoints. The VIP 198.51.100.10 is routed statically at the router
to node1 (the same for both load balancers). In NAT mode "default" (DNAT only) the endpoints
see the client's own address, so their replies to 203.0.113.0/24 must go back through node1,
which undoes the translation: a route in each endpoint, present only while a load balancer is
under test (without it, replies take the endpoints' default route to the router, which is the
``direct`` path).
"""

from __future__ import annotations

import sys
import time

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import (
    ENDPOINT_ADDRESSES,
    L3_CLIENT_ADDRESS,
    NODE_ADDRESSES,
)

SCENARIO = "scenario2"
LB_NODE = "node1"
LB_ADDRESS = NODE_ADDRESSES[LB_NODE]
VIP = "198.51.100.10"
CLIENT = "client"
CLIENT_ADDRESS = L3_CLIENT_ADDRESS
CLIENT_SUBNET = "203.0.113.0/24"
ENDPOINTS: dict[str, str] = dict(ENDPOINT_ADDRESSES)  # ep1..ep3 -> address
THROUGHPUT_ENDPOINT = "ep1"
IPERF_PORT = 5201
HTTP_PORT = 80
EXEC_TIMEOUT_S = 10.0

#: What triolb's boot duties set on a load-balancer node that matters for forwarding (a node
#: forwarding out of the interface it received on sends no redirects, no reverse-path filter).
#: Set on node1 for every variant so that nftables gets the same node as triolb.
LB_NODE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.eth0.send_redirects", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.eth0.rp_filter", "0"),
)

#: The client opens tens of thousands of short connections to one address and port: the whole
#: ephemeral range, and ports in TIME_WAIT reusable for new outgoing connections.
CLIENT_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.ipv4.ip_local_port_range", "1024 65535"),
    ("net.ipv4.tcp_tw_reuse", "1"),
)


def log(message: str) -> None:
    print(f"[dataplane] {message}", file=sys.stderr, flush=True)


def run(lab: LabHandle, host: str, argv: list[str], timeout: float = EXEC_TIMEOUT_S) -> str:
    """Run a command in ``host``; its stdout, or RuntimeError with its stderr."""
    result = lab.exec(host, argv, timeout=timeout)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise RuntimeError(f"{host}: {' '.join(argv)} failed ({result.returncode}): {detail}")
    return result.stdout


def set_sysctls(lab: LabHandle, host: str, settings: tuple[tuple[str, str], ...]) -> None:
    """Per-namespace sysctls inside ``host``."""
    run(lab, host, ["sysctl", "-q", "-w", *(f"{key}={value}" for key, value in settings)])


def prepare_lab(lab: LabHandle) -> None:
    """Sysctls of node1 and the client; the VIP routed to node1 at the router."""
    set_sysctls(lab, LB_NODE, LB_NODE_SYSCTLS)
    set_sysctls(lab, CLIENT, CLIENT_SYSCTLS)
    run(lab, "router", ["ip", "route", "replace", f"{VIP}/32", "via", LB_ADDRESS])


def route_replies_via_lb(lab: LabHandle, on: bool) -> None:
    """Add (``on``) or remove the endpoints' route for the client subnet via node1."""
    for host in ENDPOINTS:
        if on:
            run(lab, host, ["ip", "route", "replace", CLIENT_SUBNET, "via", LB_ADDRESS])
        else:
            # absent already is fine: the removal is also the clean-up after a failed start
            lab.exec(host, ["ip", "route", "del", CLIENT_SUBNET], timeout=EXEC_TIMEOUT_S)


def wait_listening(lab: LabHandle, host: str, port: int, process: str, timeout_s: float) -> None:
    """Wait (bounded) until something listens on TCP ``port`` in ``host``; RuntimeError if the
    lab process ``process`` dies first or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run(lab, host, ["ss", "-Htln", f"sport = :{port}"]).strip():
            return
        if not lab.alive(process):
            break
        time.sleep(0.05)
    tail = lab.log_tail(process)
    raise RuntimeError(f"{process} in {host} is not listening on :{port}:\n{tail}")


def check_reachable(lab: LabHandle, address: str, port: int, timeout_s: float = 5.0) -> None:
    """One TCP connection from the client to ``address:port`` (bash's /dev/tcp), or
    RuntimeError: the path is broken before any measurement."""
    script = f"exec 3<>/dev/tcp/{address}/{port} && exec 3>&-"
    argv = ["timeout", str(timeout_s), "bash", "-c", script]
    result = lab.exec(CLIENT, argv, timeout=timeout_s + 5)
    if result.returncode != 0:
        raise RuntimeError(
            f"client cannot connect to {address}:{port}: {(result.stderr or '').strip()}"
        )
