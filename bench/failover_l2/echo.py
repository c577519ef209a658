"""UDP echo responder for the failover benchmark, run inside a node's namespace (stdlib only).

Binds 0.0.0.0:PORT and answers every datagram with its payload followed by ``NAME``, sent from
the address the datagram was addressed to (IP_PKTINFO), so a probe of the VIP is answered by the
VIP and the client learns which node answered. Bounded by ``--duration``.

    python echo.py --port 9999 --name node1 --duration 600
"""

from __future__ import annotations

import argparse
import contextlib
import select
import socket
import struct
import sys
import time

IP_PKTINFO = 8  # Linux <netinet/in.h>; Python's socket module does not export it
PKTINFO = struct.Struct("=i4s4s")  # struct in_pktinfo: ifindex, spec_dst, addr
MAX_PAYLOAD = 64
POLL_S = 0.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="UDP echo naming the node that answers")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds, at most 86400")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 86400:
        parser.error("--duration must be in (0, 86400]")
    return args


def destination(ancdata: list[tuple[int, int, bytes]]) -> bytes | None:
    """The packed destination address of a datagram, from its IP_PKTINFO message."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= PKTINFO.size:
            return bytes(PKTINFO.unpack_from(data)[2])
    return None


def answer(sock: socket.socket, name: bytes) -> None:
    payload, ancdata, _flags, peer = sock.recvmsg(MAX_PAYLOAD, socket.CMSG_SPACE(PKTINFO.size))
    dst = destination(ancdata)
    control = []
    if dst is not None:
        control = [(socket.IPPROTO_IP, IP_PKTINFO, PKTINFO.pack(0, dst, bytes(4)))]
    # an error (e.g. the VIP was removed between receive and reply) is a loss for the probe
    with contextlib.suppress(OSError):
        sock.sendmsg([payload[:16], name], control, 0, peer)


def serve(port: int, name: str, duration: float) -> int:
    deadline = time.monotonic() + duration
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind(("0.0.0.0", port))
        print(f"listening on udp/{port} as {name}", flush=True)
        label = b"|" + name.encode()
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], min(left, POLL_S))
            if ready:
                answer(sock, label)
                answered += 1
    return answered


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    answered = serve(args.port, args.name, args.duration)
    print(f"done: answered {answered}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
