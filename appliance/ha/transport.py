"""The VRRP socket of one interface: raw IPv4 or IPv6, protocol 112.

One socket per interface and address family serves every HA group on it: the receiver
demultiplexes by VRID. Outgoing advertisements leave with TTL / hop limit 255 (RFC 5798
§5.1.1.3, §5.1.2.3), to the group (224.0.0.18 / ff02::12, `VrrpSocket.group`) or to each unicast
peer, with ``local`` as source (``IP_PKTINFO`` / ``IPV6_PKTINFO``), so the checksum pseudo-header
the core computes matches the IP header the kernel writes. For IPv6 ``local`` is the interface's
link-local address, the source of IPv6 advertisements (RFC 5798 §5.1.2.1). Sending never blocks:
a datagram the socket cannot take is dropped (VRRP tolerates loss).

Received IPv4 datagrams carry their IP header: the TTL (`wire.check_ttl`), source and destination
come from it. A raw IPv6 socket delivers the payload alone: the source comes from the sender's
address, hop limit and destination from ancillary data (``IPV6_RECVHOPLIMIT``,
``IPV6_RECVPKTINFO``; `parse_ipv6_ancillary`). The payload goes to `wire.decode`; the kernel
neither computes nor verifies the VRRP checksum (``IPV6_CHECKSUM`` off), `wire` does both.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from collections.abc import Iterable

import attrs
import trio

from appliance.config.values import IPAddress

from . import wire

__all__ = ["AuthCounter", "Datagram", "VrrpSocket", "parse_ipv4", "parse_ipv6_ancillary"]

RECV_SIZE = 65535
_IP_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo
_IP_MREQN = struct.Struct("=4s4si")  # struct ip_mreqn
_IN6_PKTINFO = struct.Struct("=16sI")  # struct in6_pktinfo
_IPV6_MREQ = struct.Struct("=16sI")  # struct ipv6_mreq
_INT = struct.Struct("=i")
# Linux values, for the names some Python builds or type stubs lack
IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)
IPV6_CHECKSUM: int = getattr(socket, "IPV6_CHECKSUM", 7)
IPV6_UNICAST_HOPS: int = getattr(socket, "IPV6_UNICAST_HOPS", 16)
IPV6_MULTICAST_IF: int = getattr(socket, "IPV6_MULTICAST_IF", 17)
IPV6_MULTICAST_HOPS: int = getattr(socket, "IPV6_MULTICAST_HOPS", 18)
IPV6_MULTICAST_LOOP: int = getattr(socket, "IPV6_MULTICAST_LOOP", 19)
IPV6_JOIN_GROUP: int = getattr(socket, "IPV6_JOIN_GROUP", 20)
IPV6_RECVPKTINFO: int = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO: int = getattr(socket, "IPV6_PKTINFO", 50)
IPV6_RECVHOPLIMIT: int = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT: int = getattr(socket, "IPV6_HOPLIMIT", 52)
SO_TIMESTAMPNS: int = getattr(socket, "SO_TIMESTAMPNS", 35)  # also SCM_TIMESTAMPNS
_TIMESPEC = struct.Struct("=qq")
_ANCILLARY_SIZE = (
    socket.CMSG_SPACE(_INT.size)
    + socket.CMSG_SPACE(_IN6_PKTINFO.size)
    + socket.CMSG_SPACE(_TIMESPEC.size)
)


@attrs.frozen
class Datagram:
    """A received datagram; ``ttl`` is the IPv4 TTL or the IPv6 hop limit."""

    src: IPAddress
    dst: IPAddress
    ttl: int
    payload: bytes
    #: when the kernel received it (``SO_TIMESTAMPNS``, wall clock), None if unknown: protocol
    #: timers start from the arrival, not from when the loop got round to the datagram
    arrived: float | None = None


def parse_ipv4(packet: bytes) -> Datagram | None:
    """The IPv4 header fields and payload of a raw-socket datagram; None if malformed."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    if ihl < 20 or len(packet) < ihl or total < ihl:
        return None
    return Datagram(
        src=ipaddress.IPv4Address(packet[12:16]),
        dst=ipaddress.IPv4Address(packet[16:20]),
        ttl=packet[8],
        payload=bytes(packet[ihl : min(total, len(packet))]),
    )


def parse_ipv6_ancillary(
    ancdata: Iterable[tuple[int, int, bytes]],
) -> tuple[int | None, ipaddress.IPv6Address | None]:
    """The hop limit (``IPV6_HOPLIMIT``) and destination address (``IPV6_PKTINFO``) in the
    ancillary data of `socket.socket.recvmsg`; None for what is missing or malformed."""
    hoplimit: int | None = None
    dst: ipaddress.IPv6Address | None = None
    for level, kind, data in ancdata:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == IPV6_HOPLIMIT and len(data) >= _INT.size:
            value = _INT.unpack_from(data)[0]
            hoplimit = value if 0 <= value <= 255 else None
        elif kind == IPV6_PKTINFO and len(data) >= _IN6_PKTINFO.size:
            dst = ipaddress.IPv6Address(_IN6_PKTINFO.unpack_from(data)[0])
    return hoplimit, dst


def arrival_time(ancdata: Iterable[tuple[int, int, bytes]]) -> float | None:
    """The kernel receive timestamp (``SCM_TIMESTAMPNS``) in the ancillary data, in seconds
    of the wall clock; None when absent."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds) + float(nanoseconds) / 1e9
    return None


def _unscoped(address: IPAddress) -> IPAddress:
    """``address`` without an IPv6 scope id (``fe80::1%eth0`` -> ``fe80::1``)."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return ipaddress.IPv6Address(address.packed)
    return address


class AuthCounter:
    """A strictly increasing, restart-safe counter for the authentication trailer: the wall
    clock in nanoseconds, bumped past the last value when the clock has not moved on."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


class VrrpSocket:
    """The raw protocol-112 socket bound to ``ifname``, sourcing from ``local``; its family is
    that of ``local`` (for IPv6, the interface's link-local address)."""

    def __init__(self, ifname: str, local: IPAddress, ifindex: int) -> None:
        self.ifname = ifname
        self.local: IPAddress = _unscoped(local)
        self.ifindex = ifindex
        self._sock = socket.socket(self.family, socket.SOCK_RAW, wire.IPPROTO_VRRP)
        try:
            if self.local.version == 4:
                self._setup_v4()
            else:
                self._setup_v6()
        except BaseException:
            self._sock.close()
            raise

    @classmethod
    def open(cls, ifname: str, local: IPAddress) -> VrrpSocket:
        return cls(ifname, local, socket.if_nametoindex(ifname))

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET if self.local.version == 4 else socket.AF_INET6

    @property
    def group(self) -> IPAddress:
        """The VRRP multicast group of this socket's family."""
        return wire.VRRP_GROUP_V4 if self.local.version == 4 else wire.VRRP_GROUP_V6

    def _setup_v4(self) -> None:
        s = self._sock
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, wire.TTL)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, wire.TTL)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        mreqn = _IP_MREQN.pack(wire.VRRP_GROUP_V4.packed, self.local.packed, self.ifindex)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def _setup_v6(self) -> None:
        s = self._sock
        v6 = socket.IPPROTO_IPV6
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
        # The checksum is wire's business (computed with the link-local source): -1 keeps the
        # kernel from filling it in on send and from checking it on receive. It is the default
        # for a raw socket of a protocol other than ICMPv6; set it anyway, and make sure.
        s.setsockopt(v6, IPV6_CHECKSUM, -1)
        if s.getsockopt(v6, IPV6_CHECKSUM) != -1:
            raise OSError(f"{self.ifname}: cannot turn the kernel's IPv6 checksum off")
        s.setsockopt(v6, IPV6_UNICAST_HOPS, wire.TTL)
        s.setsockopt(v6, IPV6_MULTICAST_HOPS, wire.TTL)
        s.setsockopt(v6, IPV6_MULTICAST_LOOP, 0)
        s.setsockopt(v6, IPV6_MULTICAST_IF, self.ifindex)
        s.setsockopt(v6, IPV6_RECVHOPLIMIT, 1)
        s.setsockopt(v6, IPV6_RECVPKTINFO, 1)
        mreq = _IPV6_MREQ.pack(wire.VRRP_GROUP_V6.packed, self.ifindex)
        s.setsockopt(v6, IPV6_JOIN_GROUP, mreq)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def send(self, payload: bytes, dst: IPAddress) -> bool:
        """Send one advertisement; False when it was dropped (buffer full, link down...).

        Raises ValueError when ``dst`` is not of the socket's family."""
        dst = _unscoped(dst)
        if dst.version != self.local.version:
            raise ValueError(f"destination {dst} on an IPv{self.local.version} socket")
        address: tuple[str, int] | tuple[str, int, int, int]
        if self.local.version == 4:
            level, kind = socket.IPPROTO_IP, IP_PKTINFO
            pktinfo = _IP_PKTINFO.pack(self.ifindex, self.local.packed, b"\x00" * 4)
            address = (str(dst), 0)
        else:
            level, kind = socket.IPPROTO_IPV6, IPV6_PKTINFO
            pktinfo = _IN6_PKTINFO.pack(self.local.packed, self.ifindex)
            address = (str(dst), 0, 0, self.ifindex)  # the scope of link-local / multicast
        try:
            self._sock.sendmsg([payload], [(level, kind, pktinfo)], 0, address)
        except OSError:
            return False
        return True

    async def receive(self) -> Datagram:
        """The next well-formed datagram (malformed ones are skipped)."""
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                datagram = self._receive_one()
            except OSError:  # nothing after all, or a pending error (e.g. the link went down)
                continue
            if datagram is not None:
                return datagram

    def _receive_one(self) -> Datagram | None:
        payload, ancdata, _flags, address = self._sock.recvmsg(RECV_SIZE, _ANCILLARY_SIZE)
        arrived = arrival_time(ancdata)
        if self.local.version == 4:
            datagram = parse_ipv4(payload)
            return None if datagram is None else attrs.evolve(datagram, arrived=arrived)
        hoplimit, dst = parse_ipv6_ancillary(ancdata)
        if hoplimit is None or dst is None:
            return None
        try:
            src = ipaddress.IPv6Address(str(address[0]).partition("%")[0])
        except ValueError:
            return None
        return Datagram(src=src, dst=dst, ttl=hoplimit, payload=payload, arrived=arrived)

    def close(self) -> None:
        self._sock.close()
