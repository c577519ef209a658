"""Announce that VIPs now live behind this interface's MAC address: gratuitous ARP for IPv4,
unsolicited Neighbour Advertisements for IPv6 (RFC 5798 §6.4.1, §6.4.2).

A gratuitous ARP is an ARP request for the VIP itself (sender and target protocol address
both the VIP) broadcast on the link; neighbours that have an entry for the VIP update it to
the sender's MAC.

An unsolicited Neighbour Advertisement (RFC 4861 §7.2.6) goes from the VIP to all-nodes
(ff02::1, Ethernet 33:33:00:00:00:01) with hop limit 255: ICMPv6 type 136, Override set (Router
and Solicited clear), target the VIP, and a Target Link-Layer Address option carrying the MAC.
Neighbours that have an entry for the VIP update it (Override); Linux creates a missing one
only on an interface that forwards IPv6 and whose ``accept_untracked_na`` sysctl allows it
(RFC 9131; hosts learn the VIP by solicitation as usual).

Frames are built with dpkt and sent on a packet socket bound to the interface (`Announcer`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

import dpkt
import trio

from appliance.config.values import IPAddress

__all__ = [
    "ALL_NODES",
    "ALL_NODES_MAC",
    "BROADCAST",
    "DEFAULT_COUNT",
    "DEFAULT_SPACING_S",
    "ETH_P_ARP",
    "ETH_P_IPV6",
    "Announcer",
    "announcement_frames",
    "garp_frame",
    "send_garps",
    "unsolicited_na_frame",
]

BROADCAST = b"\xff" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33" + ALL_NODES.packed[-4:]  # RFC 2464 §7
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMPV6 = 58
HOP_LIMIT = 255  # RFC 4861 §7.1.2: neighbours discard NAs with any other hop limit
NA_FLAG_ROUTER = 0x80000000
NA_FLAG_SOLICITED = 0x40000000
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LINKADDR = 2
DEFAULT_COUNT = 3
DEFAULT_SPACING_S = 0.1
MIN_FRAME = 60  # Ethernet minimum without the FCS


def _check_mac(mac: bytes) -> None:
    if len(mac) != 6:
        raise ValueError(f"MAC address of {len(mac)} bytes")


def garp_frame(mac: bytes, vip: ipaddress.IPv4Address) -> bytes:
    """The broadcast gratuitous ARP request for ``vip`` from ``mac`` (padded to 60 bytes)."""
    _check_mac(mac)
    arp = dpkt.arp.ARP(
        hrd=dpkt.arp.ARP_HRD_ETH,
        pro=dpkt.arp.ARP_PRO_IP,
        hln=6,
        pln=4,
        op=dpkt.arp.ARP_OP_REQUEST,
        sha=mac,
        spa=vip.packed,
        tha=b"\x00" * 6,
        tpa=vip.packed,
    )
    frame = bytes(dpkt.ethernet.Ethernet(dst=BROADCAST, src=mac, type=ETH_P_ARP, data=arp))
    return frame.ljust(MIN_FRAME, b"\x00")


def unsolicited_na_frame(mac: bytes, vip: ipaddress.IPv6Address) -> bytes:
    """The unsolicited Neighbour Advertisement of ``vip`` at ``mac``, from ``vip`` to all-nodes
    (86 bytes: above the Ethernet minimum, no padding)."""
    _check_mac(mac)
    body = (
        NA_FLAG_OVERRIDE.to_bytes(4, "big")  # R=0 S=0 O=1, reserved
        + vip.packed  # target address
        + bytes([ND_OPT_TARGET_LINKADDR, 1])  # option type, length in units of 8 bytes
        + mac
    )
    icmp = dpkt.icmp6.ICMP6(type=dpkt.icmp6.ND_NEIGHBOR_ADVERT, code=0, sum=0, data=body)
    ip6 = dpkt.ip6.IP6(
        nxt=IPPROTO_ICMPV6,
        hlim=HOP_LIMIT,
        src=vip.packed,
        dst=ALL_NODES.packed,
        plen=len(icmp),
        data=icmp,
    )
    # bytes(ip6) fills in the ICMPv6 checksum (pseudo-header: src, dst, length, next header)
    frame = bytes(dpkt.ethernet.Ethernet(dst=ALL_NODES_MAC, src=mac, type=ETH_P_IPV6, data=ip6))
    return frame.ljust(MIN_FRAME, b"\x00")


def announcement_frames(mac: bytes, vips: Iterable[IPAddress]) -> list[bytes]:
    """A gratuitous ARP for each IPv4 VIP, an unsolicited NA for each IPv6 one, in order."""
    return [
        garp_frame(mac, vip)
        if isinstance(vip, ipaddress.IPv4Address)
        else unsolicited_na_frame(mac, vip)
        for vip in vips
    ]


class Announcer:
    """A send-only packet socket on one interface, kept open and non-blocking, so announcing
    costs a few microseconds: no worker thread, no socket set-up (binding a packet socket to a
    protocol waits for an RCU grace period, 8-16 ms measured). Frames carry their own
    ethertype; the socket (protocol 0) receives nothing."""

    def __init__(self, ifname: str) -> None:
        self.ifname = ifname
        self._sock: socket.socket | None = None
        self._mac = b""
        self._frames: dict[tuple[bytes, tuple[IPAddress, ...]], list[bytes]] = {}

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            sock.setblocking(False)
            sock.bind((self.ifname, 0))
            self._mac = sock.getsockname()[4]
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        return sock

    def announce(self, vips: Iterable[IPAddress]) -> int:
        """Send one announcement per VIP; the number sent (a full queue drops some). Raises
        OSError when the interface is unusable (reopened once first: it may be re-created)."""
        vips = tuple(vips)
        for attempt in (1, 2):
            sock = self._sock or self._open()
            try:
                sent = 0
                for frame in self._frames_for(tuple(vips)):
                    try:
                        sock.send(frame)
                    except BlockingIOError:
                        continue
                    sent += 1
                return sent
            except OSError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def prepare(self, vips: Iterable[IPAddress]) -> None:
        """Open the socket and build the frames now, so the first announcement only sends."""
        if self._sock is None:
            self._open()
        self._frames_for(tuple(vips))

    def _frames_for(self, vips: tuple[IPAddress, ...]) -> list[bytes]:
        """The frames, built once per MAC and VIP set (dpkt costs more than the send)."""
        key = (self._mac, vips)
        frames = self._frames.get(key)
        if frames is None:
            frames = self._frames[key] = announcement_frames(self._mac, vips)
        return frames

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def send_garps(
    ifname: str,
    vips: Iterable[IPAddress],
    count: int = DEFAULT_COUNT,
    spacing_s: float = DEFAULT_SPACING_S,
) -> None:
    """Send ``count`` rounds of announcements for ``vips`` on ``ifname``, ``spacing_s`` apart:
    a gratuitous ARP for each IPv4 VIP, an unsolicited Neighbour Advertisement for each IPv6 one.

    Raises OSError when the interface is unusable (e.g. gone)."""
    vips = tuple(vips)
    announcer = Announcer(ifname)
    try:
        for round_ in range(count):
            if round_:
                await trio.sleep(spacing_s)
            announcer.announce(vips)
    finally:
        announcer.close()
