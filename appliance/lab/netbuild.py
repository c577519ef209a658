"""Build a :class:`~appliance.lab.topology.Topology` out of network namespaces with pyroute2.

Every host is a namespace ``<prefix>-<host>``; all bridges live in one switch namespace
``<prefix>-sw``. Each link is a veth pair created *inside the switch namespace* with its peer
placed directly into the host namespace under its final name (``eth0``…), so nothing is ever
created in the root namespace. Removing the namespaces removes every link with them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

from pyroute2 import IPRoute, netns

from appliance.lab.procs import NETNS_RUN_DIR, check_namespace, kill_namespace_processes
from appliance.lab.state import SWITCH_HOST, namespace_name
from appliance.lab.topology import Host, Link, Topology

SYSCTL_TIMEOUT = 10.0


def lab_namespaces() -> list[str]:
    """Names of all existing namespaces that look like lab namespaces (``tlbXXXX-…``)."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    out = []
    for name in sorted(names):
        with contextlib.suppress(ValueError):
            out.append(check_namespace(name))
    return out


def planned_namespaces(prefix: str, topology: Topology) -> dict[str, str]:
    """Host name -> namespace name, including the switch namespace under the key ``sw``."""
    names = {host.name: namespace_name(prefix, host.name) for host in topology.hosts}
    names[SWITCH_HOST] = namespace_name(prefix, SWITCH_HOST)
    return names


@contextlib.contextmanager
def lab_iproute(ns: str) -> Iterator[Any]:
    """An IPRoute bound to an existing lab namespace (never creates one, never the root ns)."""
    ipr = IPRoute(netns=check_namespace(ns), flags=0)
    try:
        yield ipr
    finally:
        ipr.close()


def create_namespace(ns: str) -> None:
    if (NETNS_RUN_DIR / check_namespace(ns)).exists():
        raise FileExistsError(errno.EEXIST, "namespace exists", ns)
    netns.create(ns)
    if not (NETNS_RUN_DIR / ns).exists():
        raise RuntimeError(f"namespace {ns} was not created")


def remove_namespace(ns: str) -> bool:
    """Kill what runs inside ``ns`` and delete it. Returns False if it did not exist."""
    check_namespace(ns)
    if not (NETNS_RUN_DIR / ns).exists():
        return False
    kill_namespace_processes(ns)
    try:
        netns.remove(ns)
    except FileNotFoundError:
        return False
    return True


def _switch_port_name(link: Link, index: int) -> str:
    name = f"{link.host}-{link.ifname}"
    return name if len(name) <= 15 else f"p{index}-{link.host}"[:15]


def _link_index(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise RuntimeError(f"interface {ifname} not found")
    return int(found[0])


def write_sysctls(ns: str, sysctls: tuple[tuple[str, str], ...]) -> None:
    """Set per-netns sysctls inside ``ns`` (``ip netns exec <ns> sysctl -w``)."""
    if not sysctls:
        return
    assignments = [f"{key}={value}" for key, value in sysctls]
    cmd = ["ip", "netns", "exec", check_namespace(ns), "sysctl", "-q", "-w", *assignments]
    subprocess.run(cmd, check=True, capture_output=True, timeout=SYSCTL_TIMEOUT)


#: The switch namespace only bridges: no IPv6 stack on its ports (no RS/MLD noise in captures).
SWITCH_SYSCTLS = (
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
)


def _build_switch(ns: str, topology: Topology, host_ns: dict[str, str]) -> None:
    write_sysctls(ns, SWITCH_SYSCTLS)
    with lab_iproute(ns) as ipr:
        ipr.link("set", index=_link_index(ipr, "lo"), state="up")
        bridges: dict[str, int] = {}
        for switch in topology.switches:
            # No multicast snooping: with no IGMP querier in the lab, snooping would
            # eventually drop the HA protocol's multicast.
            ipr.link("add", ifname=switch.bridge, kind="bridge", br_mcast_snooping=0)
            bridges[switch.name] = _link_index(ipr, switch.bridge)
            ipr.link("set", index=bridges[switch.name], state="up")
        for index, link in enumerate(topology.links):
            port = _switch_port_name(link, index)
            ipr.link(
                "add",
                ifname=port,
                kind="veth",
                peer={"ifname": link.ifname, "net_ns_fd": host_ns[link.host]},
            )
            port_index = _link_index(ipr, port)
            ipr.link("set", index=port_index, master=bridges[link.switch])
            ipr.link("set", index=port_index, state="up")


def _configure_host(ns: str, host: Host, links: tuple[Link, ...]) -> None:
    with lab_iproute(ns) as ipr:
        ipr.link("set", index=_link_index(ipr, "lo"), state="up")
        for link in links:
            index = _link_index(ipr, link.ifname)
            if link.mac is not None:
                ipr.link("set", index=index, address=link.mac)
            ipr.addr("add", index=index, address=link.ip, prefixlen=link.prefixlen)
            ipr.link("set", index=index, state="up")
        for route in host.routes:
            ipr.route("add", dst=route.dst_cidr, gateway=route.via)
    write_sysctls(ns, host.sysctls)


def build_topology(
    prefix: str,
    topology: Topology,
    on_namespace: Callable[[str], None] = lambda _ns: None,
) -> dict[str, str]:
    """Create namespaces, bridges, veths, addresses, routes and sysctls of ``topology``.

    ``on_namespace`` is called after each namespace is created (the caller records it).
    On error the partially built lab is left for the caller to tear down.
    Returns host name -> namespace name (plus ``sw`` -> switch namespace).
    """
    names = planned_namespaces(prefix, topology)
    for ns in names.values():
        create_namespace(ns)
        on_namespace(ns)
    _build_switch(names[SWITCH_HOST], topology, names)
    for host in topology.hosts:
        _configure_host(names[host.name], host, topology.links_of(host.name))
    return names


def teardown_namespaces(namespaces: list[str]) -> list[str]:
    """Remove the given lab namespaces (killing what runs inside). Returns those removed."""
    removed = []
    for ns in namespaces:
        if remove_namespace(ns):
            removed.append(ns)
    return removed
