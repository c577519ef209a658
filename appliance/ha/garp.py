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

Frames are built with dpkt and sent on AF_PACKET sockets bound to the interface.
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


def _send_frames(ifname: str, vips: tuple[IPAddress, ...]) -> None:
    v4 = [v for v in vips if isinstance(v, ipaddress.IPv4Address)]
    v6 = [v for v in vips if isinstance(v, ipaddress.IPv6Address)]
    if v4:
        with _packet_socket(ifname, ETH_P_ARP) as sock:
            mac: bytes = sock.getsockname()[4]
            for vip4 in v4:
                sock.send(garp_frame(mac, vip4))
    if v6:
        with _packet_socket(ifname, ETH_P_IPV6) as sock:
            mac = sock.getsockname()[4]
            for vip6 in v6:
                sock.send(unsolicited_na_frame(mac, vip6))


def _packet_socket(ifname: str, ethertype: int) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    try:
        sock.bind((ifname, ethertype))
    except BaseException:
        sock.close()
        raise
    return sock


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
    for round_ in range(count):
        if round_:
            await trio.sleep(spacing_s)
        await trio.to_thread.run_sync(_send_frames, ifname, vips)
