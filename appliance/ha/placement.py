"""Where a group's VIPs live: on its interface when they are on-link there (L2: neighbours ARP
for them, so they are announced by gratuitous ARP / unsolicited NA), otherwise on ``lo`` (L3:
reached through a route — BGP — so nothing is announced on the link)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from appliance.config.values import IPAddress, IPNetwork

__all__ = ["LOOPBACK", "interface_networks", "place_vips"]

LOOPBACK = "lo"


def place_vips(
    vips: Iterable[IPAddress], ifname: str, networks: Iterable[IPNetwork]
) -> dict[str, tuple[IPAddress, ...]]:
    """``{ifname: on-link VIPs, "lo": the others}``, empty entries left out, order kept."""
    nets = tuple(networks)
    placed: dict[str, list[IPAddress]] = {}
    for vip in vips:
        on_link = any(vip.version == n.version and vip in n for n in nets)
        placed.setdefault(ifname if on_link else LOOPBACK, []).append(vip)
    return {name: tuple(addresses) for name, addresses in placed.items()}


def interface_networks(ifname: str, exclude: Iterable[IPAddress] = ()) -> list[IPNetwork]:
    """The networks of ``ifname``'s addresses other than ``exclude`` (its own VIPs, which are
    host routes anyway); blocking (pyroute2)."""
    from pyroute2 import IPRoute

    skip = {str(a) for a in exclude}
    out: list[IPNetwork] = []
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return out
        for msg in ipr.get_addr(index=found[0]):
            address = msg.get_attr("IFA_ADDRESS")
            if address is None or address in skip:
                continue
            network = ipaddress.ip_network(f"{address}/{msg['prefixlen']}", strict=False)
            if not network.is_link_local:
                out.append(network)
    return out
