"""The VRRP socket of one interface: raw IPv4, protocol 112 (IPv4 only for now).

One socket per interface serves every HA group on it: the receiver demultiplexes by VRID.
Outgoing advertisements leave with TTL 255 (RFC 5798 §5.1.1.3), to 224.0.0.18 or to each
unicast peer, with the interface's primary address as source (``IP_PKTINFO``), so the
checksum pseudo-header the core computes matches the IP header the kernel writes. Sending
never blocks: a datagram the socket cannot take is dropped (VRRP tolerates loss).

Received datagrams carry their IP header: the TTL (`wire.check_ttl`), source and destination
come from it, the payload goes to `wire.decode`.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import time

import attrs
import trio

from . import wire

__all__ = ["AuthCounter", "Datagram", "VrrpSocket", "parse_ipv4"]

RECV_SIZE = 65535
_IP_PKTINFO = struct.Struct("=I4s4s")  # struct in_pktinfo
_IP_MREQN = struct.Struct("=4s4si")  # struct ip_mreqn
IP_PKTINFO: int = getattr(socket, "IP_PKTINFO", 8)  # Linux value; not in every stub


@attrs.frozen
class Datagram:
    src: ipaddress.IPv4Address
    dst: ipaddress.IPv4Address
    ttl: int
    payload: bytes


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


class AuthCounter:
    """A strictly increasing, restart-safe counter for the authentication trailer: the wall
    clock in nanoseconds, bumped past the last value when the clock has not moved on."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


class VrrpSocket:
    """The raw protocol-112 socket bound to ``ifname``, sourcing from ``local``."""

    def __init__(self, ifname: str, local: ipaddress.IPv4Address, ifindex: int) -> None:
        self.ifname = ifname
        self.local = local
        self.ifindex = ifindex
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, wire.IPPROTO_VRRP)
        try:
            self._setup()
        except BaseException:
            self._sock.close()
            raise

    @classmethod
    def open(cls, ifname: str, local: ipaddress.IPv4Address) -> VrrpSocket:
        return cls(ifname, local, socket.if_nametoindex(ifname))

    def _setup(self) -> None:
        s = self._sock
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, wire.TTL)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, wire.TTL)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        mreqn = _IP_MREQN.pack(wire.VRRP_GROUP_V4.packed, self.local.packed, self.ifindex)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)

    def send(self, payload: bytes, dst: ipaddress.IPv4Address) -> bool:
        """Send one advertisement; False when it was dropped (buffer full, link down...)."""
        pktinfo = _IP_PKTINFO.pack(self.ifindex, self.local.packed, b"\x00" * 4)
        try:
            self._sock.sendmsg(
                [payload],
                [(socket.IPPROTO_IP, IP_PKTINFO, pktinfo)],
                0,
                (str(dst), 0),
            )
        except OSError:
            return False
        return True

    async def receive(self) -> Datagram:
        """The next well-formed IPv4 datagram (malformed ones are skipped)."""
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                packet = self._sock.recv(RECV_SIZE)
            except BlockingIOError:
                continue
            datagram = parse_ipv4(packet)
            if datagram is not None:
                return datagram

    def close(self) -> None:
        self._sock.close()
