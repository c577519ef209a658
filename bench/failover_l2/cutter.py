"""Cut a node's link at a fixed phase of its advert cycle (run inside the node's namespace).

The gap a client sees is the Master_Down_Interval less the time between the master's last
advert and the cut, plus the takeover. With a cut at a random moment that phase term spreads
the gaps over a whole advert interval and the medians of two short series differ by chance;
cutting ``--phase-ms`` after an advert leaves every trial of every implementation the same
phase. Waits for the node's next outgoing VRRP packet (IP protocol 112, an AF_PACKET socket
sees outgoing frames), waits the phase, then clears IFF_UP with an ioctl (SIOCSIFFLAGS: no
process to start, well under a millisecond). Prints JSON: the advert, cut and done times on
CLOCK_MONOTONIC (shared by every namespace, as the probe's clock is).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import socket
import struct
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
IPPROTO_VRRP = 112
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFREQ = struct.Struct("16sH14x")


def wait_outgoing_advert(ifname: str, timeout_s: float) -> float:
    # outgoing frames reach only ETH_P_ALL taps, not sockets of one protocol
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.bind((ifname, ETH_P_ALL))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                frame, address = sock.recvfrom(2048)
            except TimeoutError:
                break
            outgoing = address[2] == PACKET_OUTGOING and address[1] == ETH_P_IP
            if outgoing and len(frame) > 23 and frame[23] == IPPROTO_VRRP:
                return time.monotonic()
    raise SystemExit(f"no outgoing advert on {ifname} within {timeout_s}s")


def link_down(ifname: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        name = ifname.encode()
        flags = IFREQ.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, IFREQ.pack(name, 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, IFREQ.pack(name, flags & ~IFF_UP))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ifname", default="eth0")
    parser.add_argument("--phase-ms", type=float, required=True)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    advert_at = wait_outgoing_advert(args.ifname, args.timeout)
    cut_at = advert_at + args.phase_ms / 1000
    if (left := cut_at - time.monotonic()) > 0.002:
        time.sleep(left - 0.002)
    while time.monotonic() < cut_at:  # the last 2 ms spun: sleep() may overshoot
        pass
    cut_from = time.monotonic()
    link_down(args.ifname)
    print(json.dumps({"advert_at": advert_at, "cut_from": cut_from, "cut_done": time.monotonic()}))


if __name__ == "__main__":
    main()
