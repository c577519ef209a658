"""Gratuitous ARP: announce that a VIP now lives behind this interface's MAC address.

A gratuitous ARP is an ARP request for the VIP itself (sender and target protocol address
both the VIP) broadcast on the link; neighbours that have an entry for the VIP update it to
the sender's MAC. Frames are built with dpkt and sent on an AF_PACKET socket bound to the
interface. IPv4 only (unsolicited neighbour advertisements for IPv6 are not built yet).
"""

from __future__ import annotations

import ipaddress
import socket

import dpkt
import trio

__all__ = [
    "BROADCAST",
    "DEFAULT_COUNT",
    "DEFAULT_SPACING_S",
    "ETH_P_ARP",
    "garp_frame",
    "send_garps",
]

BROADCAST = b"\xff" * 6
ETH_P_ARP = 0x0806
DEFAULT_COUNT = 3
DEFAULT_SPACING_S = 0.1
MIN_FRAME = 60  # Ethernet minimum without the FCS


def garp_frame(mac: bytes, vip: ipaddress.IPv4Address) -> bytes:
    """The broadcast gratuitous ARP request for ``vip`` from ``mac`` (padded to 60 bytes)."""
    if len(mac) != 6:
        raise ValueError(f"MAC address of {len(mac)} bytes")
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


def _send_frames(ifname: str, vips: tuple[ipaddress.IPv4Address, ...]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        mac: bytes = sock.getsockname()[4]
        for vip in vips:
            sock.send(garp_frame(mac, vip))


async def send_garps(
    ifname: str,
    vips: tuple[ipaddress.IPv4Address, ...],
    count: int = DEFAULT_COUNT,
    spacing_s: float = DEFAULT_SPACING_S,
) -> None:
    """Send ``count`` rounds of gratuitous ARPs for ``vips`` on ``ifname``, ``spacing_s`` apart.

    Raises OSError when the interface is unusable (e.g. gone)."""
    for round_ in range(count):
        if round_:
            await trio.sleep(spacing_s)
        await trio.to_thread.run_sync(_send_frames, ifname, vips)
