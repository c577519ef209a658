"""The VIP addresses of an HA group on its interface (rtnetlink; `AddressEditor` is fast enough
for the event loop, the other functions here block: call them in a worker thread).

VIPs are host addresses (``/32``, ``/128``); adding an address that is present and removing
one that is absent are no-ops, so a reconciler may re-run them at any time. IPv6 VIPs are added
without duplicate address detection (``IFA_F_NODAD``): they are usable at once, not "tentative"
for a second, and a VIP briefly present on the old owner too must not be marked "dadfailed".
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import threading
from collections.abc import Iterable

from appliance.config.values import IPAddress

__all__ = [
    "VIP_PROTO",
    "AddressEditor",
    "add_vips",
    "link_local_address",
    "primary_addresses",
    "release_owned",
    "remove_vips",
]

AF_INET6 = 10
IFA_F_NODAD = 0x02
#: the address protocol (IFA_PROTO, Linux 6.3+) triolb tags its VIP addresses with, so that a
#: node whose daemon is gone can release them (`release_owned`): values 0-3 are the kernel's
VIP_PROTO = 0x74
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
NETLINK_ROUTE = 0
RTM_NEWADDR = 20
RTM_DELADDR = 21
NLMSG_ERROR = 2
ACK_TIMEOUT_S = 1.0
_NLMSGHDR = struct.Struct("=IHHII")
_ERRNO = struct.Struct("=i")
_SEQ = struct.Struct("=I")
_SEQ_OFFSET = 8  # of nlmsg_seq in struct nlmsghdr


def _ifindex(ifname: str) -> int:
    """The interface's index in this network namespace (an ioctl: pyroute2's link_lookup
    dumps every link, about a millisecond)."""
    try:
        return socket.if_nametoindex(ifname)
    except OSError as exc:
        raise OSError(errno.ENODEV, f"no interface {ifname}") from exc


class AddressEditor:
    """Adds and removes host addresses with one rtnetlink request each on a netlink socket
    kept open (messages encoded by pyroute2's ``ifaddrmsg``). The kernel handles a request
    inside ``send`` and queues its acknowledgement before returning, so an add costs about
    0.2 ms: the failover path can afford it on the event loop (pyroute2's ``IPRoute.addr``
    takes 0.5 ms from its own thread and 2-4 ms from another). Calls are serialised."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._seq = 0
        # encoded requests by (kind, ifindex, address): only the sequence number changes
        self._requests: dict[tuple[int, int, IPAddress], bytearray] = {}

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            sock.bind((0, 0))
            self._sock = sock
        return self._sock

    def prepare(self, ifname: str, vips: Iterable[IPAddress]) -> None:
        """Open the socket and encode the add requests now (the first add only sends)."""
        index = _ifindex(ifname)
        with self._lock:
            self._socket()
            for vip in vips:
                self._request(RTM_NEWADDR, index, vip)

    def _request(self, kind: int, index: int, vip: IPAddress) -> bytearray:
        request = self._requests.get((kind, index, vip))
        if request is None:
            request = bytearray(_address_request(kind, index, vip, 0))
            self._requests[(kind, index, vip)] = request
        return request

    def add(self, ifname: str, vips: Iterable[IPAddress]) -> list[IPAddress]:
        """Add ``vips`` as host addresses on ``ifname``; returns those that were added."""
        return self._apply(RTM_NEWADDR, ifname, vips, ignore=(errno.EEXIST,))

    def remove(self, ifname: str, vips: Iterable[IPAddress]) -> list[IPAddress]:
        """Remove ``vips`` from ``ifname``; returns those that were removed (none when the
        interface is gone: its addresses went with it)."""
        try:
            _ifindex(ifname)
        except OSError:
            return []
        absent = (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH)
        return self._apply(RTM_DELADDR, ifname, vips, ignore=absent)

    def _apply(
        self, kind: int, ifname: str, vips: Iterable[IPAddress], *, ignore: tuple[int, ...]
    ) -> list[IPAddress]:
        index = _ifindex(ifname)
        done = []
        with self._lock:
            sock = self._socket()
            for vip in vips:
                self._seq = self._seq % 0xFFFFFFFF + 1
                request = self._request(kind, index, vip)
                _SEQ.pack_into(request, _SEQ_OFFSET, self._seq)
                try:
                    sock.send(request)
                    code = _acknowledgement(sock, self._seq)
                except OSError:
                    self._close()
                    raise
                if code == 0:
                    done.append(vip)
                elif -code not in ignore:
                    raise OSError(-code, f"{os.strerror(-code)}: {vip} on {ifname}")
        return done

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._close()


def _address_request(kind: int, index: int, vip: IPAddress, seq: int) -> bytes:
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if vip.version == 4 else socket.AF_INET6
    msg["prefixlen"] = vip.max_prefixlen
    msg["index"] = index
    attributes: list[tuple[str, object]] = [("IFA_ADDRESS", str(vip))]
    if vip.version == 4:
        attributes.append(("IFA_LOCAL", str(vip)))
    elif kind == RTM_NEWADDR:
        attributes.append(("IFA_FLAGS", IFA_F_NODAD))
    if kind == RTM_NEWADDR:
        attributes.append(("IFA_PROTO", VIP_PROTO))
    msg["attrs"] = attributes
    flags = NLM_F_REQUEST | NLM_F_ACK
    if kind == RTM_NEWADDR:
        flags |= NLM_F_CREATE | NLM_F_EXCL
    msg["header"]["type"] = kind
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    data: bytes = msg.data
    return data


def _acknowledgement(sock: socket.socket, seq: int) -> int:
    """The error code (0: done, -errno: refused) of request ``seq``: already queued by the
    time ``send`` returned; waits at most `ACK_TIMEOUT_S` in case it is not."""
    sock.settimeout(ACK_TIMEOUT_S)
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, kind, _flags, number, _pid = _NLMSGHDR.unpack_from(data, offset)
            if kind == NLMSG_ERROR and number == seq:
                code: int = _ERRNO.unpack_from(data, offset + _NLMSGHDR.size)[0]
                return code
            offset += max(length, _NLMSGHDR.size)


def add_vips(ifname: str, vips: Iterable[IPAddress]) -> list[IPAddress]:
    """Add the VIPs as host addresses on ``ifname``; returns those that were added."""
    editor = AddressEditor()
    try:
        return editor.add(ifname, vips)
    finally:
        editor.close()


def remove_vips(ifname: str, vips: Iterable[IPAddress]) -> list[IPAddress]:
    """Remove the VIPs' host addresses from ``ifname``; returns those that were removed."""
    editor = AddressEditor()
    try:
        return editor.remove(ifname, vips)
    finally:
        editor.close()


def release_owned() -> list[tuple[str, IPAddress]]:
    """Blocking (pyroute2): remove every address triolb's HA added in this network namespace
    (tagged `VIP_PROTO`); the (interface, address) pairs removed. For a node whose daemon is
    gone and whose dataplane was flushed: it must stop answering for the VIPs (it would reset
    the connections the peer took over)."""
    from pyroute2 import IPRoute

    removed: list[tuple[str, IPAddress]] = []
    with IPRoute() as ipr:
        names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        for msg in ipr.get_addr():
            if msg.get_attr("IFA_PROTO") != VIP_PROTO:
                continue
            address = ipaddress.ip_address(msg.get_attr("IFA_ADDRESS"))
            ipr.addr("del", index=msg["index"], address=str(address), prefixlen=msg["prefixlen"])
            removed.append((str(names.get(msg["index"], msg["index"])), address))
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
