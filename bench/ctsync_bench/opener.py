"""Open TCP connections to a target at a steady rate and hold each for a while (stdlib only).

Run in the client namespace (``python opener.py --target VIP --port 9000 --out FILE ...``).
For each connection, once ``connect()`` returns (the client got the SYN-ACK: established on its
side), one line ``<client port> <CLOCK_MONOTONIC ns> <wall-clock ns>`` is appended to ``--out``
and flushed, so a prober can follow the pending keys while the run goes on. A failed connect
writes ``fail <errno text>``. Each socket is closed ``--hold`` seconds after it opened; the
last line is ``done <opened> <failed>``. Bounded: ``--count`` connections, ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import collections
import socket
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="connections per second")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each stays open")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 20000 or not 1 <= args.rate <= 5000:
        parser.error("--count in [1, 20000], --rate in [1, 5000]")
    held: collections.deque[tuple[float, socket.socket]] = collections.deque()
    opened = failed = 0
    started = time.monotonic()
    deadline = started + args.max_seconds
    with open(args.out, "w", buffering=1) as out:
        for index in range(args.count):
            due = started + index / args.rate
            while True:
                now = time.monotonic()
                while held and held[0][0] <= now:
                    held.popleft()[1].close()
                if now >= due or now >= deadline:
                    break
                time.sleep(min(due - now, 0.0005))
            if time.monotonic() >= deadline:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(3.0)
            try:
                sock.connect((args.target, args.port))
            except OSError as exc:
                mono = time.monotonic_ns()
                sock.close()
                failed += 1
                out.write(f"fail {mono} {exc}\n")
                continue
            mono, wall = time.monotonic_ns(), time.time_ns()
            out.write(f"{sock.getsockname()[1]} {mono} {wall}\n")
            opened += 1
            held.append((time.monotonic() + args.hold, sock))
        while held and time.monotonic() < deadline + args.hold:
            close_at, sock = held[0]
            time.sleep(max(0.0, min(close_at - time.monotonic(), 0.05)))
            if time.monotonic() >= close_at:
                held.popleft()[1].close()
        for _, sock in held:
            sock.close()
        out.write(f"done {opened} {failed}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
