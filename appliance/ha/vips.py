"""The VIP addresses of an HA group on its interface, with pyroute2 (blocking: call the
functions here in a worker thread, e.g. `trio.to_thread.run_sync`).

VIPs are host addresses (``/32``, ``/128``); adding an address that is present and removing
one that is absent are no-ops, so a reconciler may re-run them at any time.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterable

from appliance.config.values import IPAddress

__all__ = ["add_vips", "primary_addresses", "remove_vips"]


def _ifindex(ipr: object, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)  # type: ignore[attr-defined]
    if not found:
        raise OSError(errno.ENODEV, f"no interface {ifname}")
    return int(found[0])


def add_vips(ifname: str, vips: Iterable[IPAddress]) -> list[IPAddress]:
    """Add the VIPs as host addresses on ``ifname``; returns those that were added."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    added = []
    with IPRoute() as ipr:
        index = _ifindex(ipr, ifname)
        for vip in vips:
            try:
                ipr.addr("add", index=index, address=str(vip), prefixlen=vip.max_prefixlen)
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise
            else:
                added.append(vip)
    return added


def remove_vips(ifname: str, vips: Iterable[IPAddress]) -> list[IPAddress]:
    """Remove the VIPs' host addresses from ``ifname``; returns those that were removed."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    removed = []
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return []  # the interface is gone, and its addresses with it
        for vip in vips:
            try:
                ipr.addr("del", index=found[0], address=str(vip), prefixlen=vip.max_prefixlen)
            except NetlinkError as exc:
                if exc.code not in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
                    raise
            else:
                removed.append(vip)
    return removed


def primary_addresses(
    ifnames: Iterable[str], exclude: Iterable[IPAddress] = ()
) -> dict[str, ipaddress.IPv4Address]:
    """The first IPv4 address of each interface that is not one of ``exclude`` (the VIPs);
    interfaces without one are left out."""
    from pyroute2 import IPRoute

    skip = set(exclude)
    out: dict[str, ipaddress.IPv4Address] = {}
    with IPRoute() as ipr:
        for ifname in ifnames:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                continue
            for msg in ipr.get_addr(family=2, index=found[0]):
                address = ipaddress.IPv4Address(msg.get_attr("IFA_ADDRESS"))
                if address not in skip:
                    out[ifname] = address
                    break
    return out
