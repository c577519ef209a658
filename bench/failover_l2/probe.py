"""Client probe for the failover benchmark, run inside the client's namespace (stdlib only).

``run``: send one UDP datagram (8-byte sequence number) every ``--interval-ms`` to VIP:PORT for
``--duration`` seconds, timestamp every reply on CLOCK_MONOTONIC (shared by all namespaces, so
the bench can relate it to the moment it cut the link) and print, as one JSON line, the replies
per answering node and the largest intervals between consecutive replies. A line
``{"event": "probe_started", ...}`` is printed as soon as the first reply arrived.

``check``: send every 5 ms until ``--need`` consecutive replies came from node ``--expect``
(exit 0) or ``--duration`` passed (exit 1).

    python probe.py run 192.168.80.200 9999 --duration 2.5
    python probe.py check 192.168.80.200 9999 --expect node1 --duration 10
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import select
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

SEQ = struct.Struct("!Q")
MAX_DURATION_S = 60.0
CHECK_INTERVAL_S = 0.005
TOP_GAPS = 5
LINGER_S = 0.05  # replies to the last datagrams may still be in flight


@dataclass
class Arrival:
    t: float
    seq: int
    node: str


@dataclass
class Probe:
    sock: socket.socket
    target: tuple[str, int]
    seq: int = 0
    sent_at: list[float] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)

    def send(self) -> None:
        with contextlib.suppress(OSError):  # counted as sent and lost
            self.sock.sendto(SEQ.pack(self.seq), self.target)
        self.sent_at.append(time.monotonic())
        self.seq += 1

    def drain(self) -> list[Arrival]:
        """Read every reply waiting on the socket."""
        new: list[Arrival] = []
        while True:
            try:
                data, (src, _port) = self.sock.recvfrom(128)
            except BlockingIOError:
                break
            now = time.monotonic()
            if src != self.target[0] or len(data) < SEQ.size:
                continue
            node = data[SEQ.size :].partition(b"|")[2].decode(errors="replace")
            new.append(Arrival(now, SEQ.unpack_from(data)[0], node))
        self.arrivals.extend(new)
        return new

    def wait(self, until: float) -> list[Arrival]:
        """Wait for replies until ``until`` (monotonic); return those that came."""
        timeout = max(0.0, until - time.monotonic())
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return self.drain() if ready else []


def open_probe(vip: str, port: int) -> Probe:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return Probe(sock, (vip, port))


def gap_entry(a: Arrival, b: Arrival) -> dict[str, object]:
    return {
        "start": a.t,
        "end": b.t,
        "ms": round((b.t - a.t) * 1000, 3),
        "before": a.node,
        "after": b.node,
        "seq_after": b.seq,
    }


def gaps(
    arrivals: list[Arrival], start: float, end: float
) -> tuple[list[dict[str, object]], float]:
    """The largest intervals between consecutive replies, and the silence after the last one."""
    pairs = sorted(itertools.pairwise(arrivals), key=lambda p: p[1].t - p[0].t, reverse=True)
    tail = (end - (arrivals[-1].t if arrivals else start)) * 1000
    return [gap_entry(a, b) for a, b in pairs[:TOP_GAPS]], round(tail, 3)


def run(vip: str, port: int, duration: float, interval: float) -> dict[str, object]:
    probe = open_probe(vip, port)
    start = time.monotonic()
    end = start + duration
    next_send = start
    started = False
    while (now := time.monotonic()) < end:
        if now >= next_send:
            probe.send()
            next_send = max(next_send + interval, now)  # late: no burst to catch up
        if probe.wait(min(next_send, end)) and not started:
            started = True
            print(json.dumps({"event": "probe_started", "t": time.monotonic()}), flush=True)
    probe.wait(end + LINGER_S)
    stop = time.monotonic()
    top, tail = gaps(probe.arrivals, start, stop)
    nodes: dict[str, int] = {}
    for arrival in probe.arrivals:
        nodes[arrival.node] = nodes.get(arrival.node, 0) + 1
    sends = probe.sent_at
    send_gaps = [b - a for a, b in itertools.pairwise(sends)]
    return {
        "event": "probe_result",
        "t_start": start,
        "t_end": stop,
        "sent": probe.seq,
        "received": len(probe.arrivals),
        "lost": probe.seq - len({a.seq for a in probe.arrivals}),
        "nodes": nodes,
        "first_node": probe.arrivals[0].node if probe.arrivals else None,
        "last_node": probe.arrivals[-1].node if probe.arrivals else None,
        "max_gap_ms": top[0]["ms"] if top else None,
        "top_gaps": top,
        "tail_gap_ms": tail,
        "max_send_interval_ms": round(max(send_gaps, default=0.0) * 1000, 3),
    }


def check(vip: str, port: int, expect: str, need: int, duration: float) -> dict[str, object]:
    probe = open_probe(vip, port)
    start = time.monotonic()
    end = start + duration
    streak = 0
    last = None
    while time.monotonic() < end and streak < need:
        probe.send()
        for arrival in probe.wait(min(time.monotonic() + CHECK_INTERVAL_S, end)):
            last = arrival.node
            streak = streak + 1 if arrival.node == expect else 0
    return {
        "event": "probe_check",
        "ok": streak >= need,
        "expect": expect,
        "last_node": last,
        "elapsed_s": round(time.monotonic() - start, 3),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="UDP probe of the VIP")
    parser.add_argument("mode", choices=["run", "check"])
    parser.add_argument("vip")
    parser.add_argument("port", type=int)
    parser.add_argument("--duration", type=float, required=True, help="seconds, at most 60")
    parser.add_argument("--interval-ms", type=float, default=1.0, help="run: send interval")
    parser.add_argument("--expect", default="node1", help="check: the node that must answer")
    parser.add_argument("--need", type=int, default=20, help="check: consecutive replies")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION_S:
        parser.error(f"--duration must be in (0, {MAX_DURATION_S:.0f}]")
    if not 0.1 <= args.interval_ms <= 1000:
        parser.error("--interval-ms must be in [0.1, 1000]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.mode == "run":
        result = run(args.vip, args.port, args.duration, args.interval_ms / 1000)
        print(json.dumps(result), flush=True)
        return 0
    result = check(args.vip, args.port, args.expect, args.need, args.duration)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
