"""Declarative lab topology: hosts, switches (Linux bridges) and the links between them.

Pure data, no I/O. A :class:`Topology` is validated on construction so that the builder
(:mod:`appliance.lab.netbuild`) can trust names, lengths and cross references.
"""

from __future__ import annotations

import enum
import ipaddress
import re

import attrs

HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
SWITCH_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
IFNAME_MAX = 15
MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")

#: Only per-network-namespace sysctls may be set in a lab host.
ALLOWED_SYSCTL_PREFIXES = (
    "net.ipv4.ip_forward",
    "net.ipv4.ip_nonlocal_bind",
    "net.ipv4.fib_multipath_hash_policy",
    "net.ipv4.conf.",
    "net.ipv4.neigh.",
    "net.ipv6.conf.",
    "net.ipv6.neigh.",
)


class TopologyError(ValueError):
    """A topology is inconsistent (unknown reference, duplicate or invalid name)."""


class HostRole(enum.StrEnum):
    NODE = "node"
    ENDPOINT = "endpoint"
    CLIENT = "client"
    ROUTER = "router"


def _check_ifname(_inst: object, _attr: object, value: str) -> None:
    if not value or len(value) > IFNAME_MAX or "/" in value or " " in value:
        raise TopologyError(f"invalid interface name {value!r}")


def _check_cidr(_inst: object, _attr: object, value: str) -> None:
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError as exc:
        raise TopologyError(f"invalid address {value!r}: {exc}") from exc
    if "/" not in value:
        raise TopologyError(f"address {value!r} needs a prefix length")
    if iface.network.prefixlen == iface.max_prefixlen and iface.version == 4:
        raise TopologyError(f"address {value!r} is a host route, not an interface address")


def _check_mac(_inst: object, _attr: object, value: str | None) -> None:
    if value is not None and not MAC_RE.match(value):
        raise TopologyError(f"invalid MAC {value!r} (want lower-case aa:bb:cc:dd:ee:ff)")


@attrs.frozen
class Route:
    """A static route: ``dst`` is ``"default"`` or a CIDR, ``via`` a gateway address."""

    dst: str
    via: str

    def __attrs_post_init__(self) -> None:
        if self.dst != "default":
            try:
                ipaddress.ip_network(self.dst)
            except ValueError as exc:
                raise TopologyError(f"invalid route destination {self.dst!r}") from exc
        try:
            ipaddress.ip_address(self.via)
        except ValueError as exc:
            raise TopologyError(f"invalid gateway {self.via!r}") from exc

    @property
    def dst_cidr(self) -> str:
        return "0.0.0.0/0" if self.dst == "default" else self.dst


@attrs.frozen
class Host:
    """A network namespace. ``interfaces`` lists its interface names in order (eth0, eth1…)."""

    name: str
    role: HostRole
    interfaces: tuple[str, ...]
    routes: tuple[Route, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()

    def __attrs_post_init__(self) -> None:
        if not HOST_NAME_RE.match(self.name):
            raise TopologyError(f"invalid host name {self.name!r} (want [a-z][a-z0-9]{{0,9}})")
        for ifname in self.interfaces:
            _check_ifname(self, None, ifname)
        if len(set(self.interfaces)) != len(self.interfaces):
            raise TopologyError(f"host {self.name}: duplicate interface names")
        for key, _value in self.sysctls:
            if not key.startswith(ALLOWED_SYSCTL_PREFIXES) or not re.match(r"^[a-z0-9_.]+$", key):
                raise TopologyError(f"host {self.name}: sysctl {key!r} is not a per-netns one")


@attrs.frozen
class Switch:
    """A Linux bridge living in the lab's switch namespace."""

    name: str

    def __attrs_post_init__(self) -> None:
        if not SWITCH_NAME_RE.match(self.name):
            raise TopologyError(f"invalid switch name {self.name!r} (want [a-z][a-z0-9]{{0,11}})")

    @property
    def bridge(self) -> str:
        return f"br-{self.name}"


@attrs.frozen
class Link:
    """A veth pair: ``host``'s ``ifname`` (with ``address``) plugged into ``switch``."""

    host: str
    ifname: str = attrs.field(validator=_check_ifname)
    switch: str
    address: str = attrs.field(validator=_check_cidr)
    mac: str | None = attrs.field(default=None, validator=_check_mac)

    @property
    def ip(self) -> str:
        return str(ipaddress.ip_interface(self.address).ip)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_interface(self.address).network.prefixlen


@attrs.frozen
class Topology:
    hosts: tuple[Host, ...]
    switches: tuple[Switch, ...]
    links: tuple[Link, ...]

    def __attrs_post_init__(self) -> None:
        host_names = [h.name for h in self.hosts]
        if len(set(host_names)) != len(host_names):
            raise TopologyError("duplicate host names")
        if "sw" in host_names:
            raise TopologyError("host name 'sw' is reserved for the switch namespace")
        switch_names = [s.name for s in self.switches]
        if len(set(switch_names)) != len(switch_names):
            raise TopologyError("duplicate switch names")
        hosts = {h.name: h for h in self.hosts}
        wired: set[tuple[str, str]] = set()
        addresses: set[str] = set()
        for link in self.links:
            host = hosts.get(link.host)
            if host is None:
                raise TopologyError(f"link to unknown host {link.host!r}")
            if link.switch not in switch_names:
                raise TopologyError(f"link to unknown switch {link.switch!r}")
            if link.ifname not in host.interfaces:
                raise TopologyError(f"host {link.host} has no interface {link.ifname}")
            key = (link.host, link.ifname)
            if key in wired:
                raise TopologyError(f"{link.host}/{link.ifname} is wired twice")
            wired.add(key)
            if link.ip in addresses:
                raise TopologyError(f"address {link.ip} used twice")
            addresses.add(link.ip)
        for host in self.hosts:
            for ifname in host.interfaces:
                if (host.name, ifname) not in wired:
                    raise TopologyError(f"{host.name}/{ifname} is not wired to a switch")

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    def links_of(self, host: str) -> tuple[Link, ...]:
        """Links of ``host`` in the order of its declared interfaces."""
        order = self.host(host).interfaces
        mine = [link for link in self.links if link.host == host]
        return tuple(sorted(mine, key=lambda link: order.index(link.ifname)))

    def hosts_with_role(self, role: HostRole) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.role is role)

    def address_of(self, host: str, ifname: str = "eth0") -> str:
        """The IP (without prefix length) of ``host``'s ``ifname``."""
        for link in self.links:
            if link.host == host and link.ifname == ifname:
                return link.ip
        raise KeyError(f"{host}/{ifname}")
