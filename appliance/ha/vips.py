"""The VIP addresses of an HA group on its interface, with pyroute2 (blocking: call the
functions here in a worker thread, e.g. `trio.to_thread.run_sync`).

VIPs are host addresses (``/32``, ``/128``); adding an address that is present and removing
one that is absent are no-ops, so a reconciler may re-run them at any time. IPv6 VIPs are added
without duplicate address detection (``IFA_F_NODAD``): they are usable at once, not "tentative"
for a second, and a VIP briefly present on the old owner too must not be marked "dadfailed".
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Iterable

from appliance.config.values import IPAddress

__all__ = ["add_vips", "link_local_address", "primary_addresses", "remove_vips"]

AF_INET6 = 10
IFA_F_NODAD = 0x02
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")


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
            # pyroute2 sends ``flags`` as the 32-bit IFA_FLAGS attribute
            extra = {"flags": IFA_F_NODAD} if vip.version == 6 else {}
            try:
                ipr.addr("add", index=index, address=str(vip), prefixlen=vip.max_prefixlen, **extra)
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


def _address_flags(msg: object) -> int:
    """An address message's flags: the 32-bit IFA_FLAGS attribute, else the 8-bit field."""
    flags = msg.get_attr("IFA_FLAGS")  # type: ignore[attr-defined]
    if flags is None:
        flags = msg["flags"]  # type: ignore[index]
    return int(flags)


def link_local_address(ifname: str) -> ipaddress.IPv6Address | None:
    """The interface's link-local (fe80::/10) IPv6 address, the source of its IPv6
    advertisements: the first one that has completed duplicate address detection, else the first
    still tentative (not usable as a source yet: ask again later); None when the interface has
    none (e.g. IPv6 disabled, link never up) or does not exist."""
    from pyroute2 import IPRoute

    tentative: ipaddress.IPv6Address | None = None
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            return None
        for msg in ipr.get_addr(family=AF_INET6, index=found[0]):
            address = ipaddress.IPv6Address(msg.get_attr("IFA_ADDRESS"))
            if address not in LINK_LOCAL:
                continue
            flags = _address_flags(msg)
            if flags & IFA_F_DADFAILED:
                continue
            if not flags & IFA_F_TENTATIVE:
                return address
            if tentative is None:
                tentative = address
    return tentative
