"""ExaBGP API process: counts the prefixes ExaBGP receives and reports like the triolb receiver.

Run by ExaBGP (``process counter { run <venv python> exabgp_api.py --events F --expect N; }``)
with ``encoder json`` and ``receive { parsed; update; }`` + ``neighbor-changes``. Reads ExaBGP's
JSON messages from stdin; writes JSON lines to ``--events`` (not stdout: stdout goes back to
ExaBGP as commands):

    {"event": "established", "t": <monotonic>}
    {"event": "progress", "received": n, "t": ...}        at most every 0.25 s
    {"event": "done", "received": N, "t": ...}             once n >= expect
    {"event": "down", "received": n, "t": ...}             the session went down

``received`` is announced NLRIs minus withdrawn NLRIs of ipv4 unicast (BIRD's initial feed
sends each prefix once). Stdlib only; CLOCK_MONOTONIC is shared with the bench across netns.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

PROGRESS_PERIOD = 0.25


def emit(out: TextIO, event: str, **fields: Any) -> None:
    out.write(json.dumps({"event": event, **fields, "t": time.monotonic()}) + "\n")
    out.flush()


def count_update(update: dict[str, Any]) -> int:
    delta = 0
    for by_nexthop in update.get("announce", {}).values():
        if isinstance(by_nexthop, dict):
            for nlris in by_nexthop.values():
                delta += len(nlris)
    for nlris in update.get("withdraw", {}).values():
        if isinstance(nlris, list):
            delta -= len(nlris)
    return delta


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args()
    received = 0
    done = False
    last_progress = 0.0
    with open(args.events, "a", buffering=1) as out:
        emit(out, "started")
        for raw in sys.stdin.buffer:
            if not raw.startswith(b"{"):
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            kind = message.get("type")
            neighbor = message.get("neighbor", {})
            if kind == "state":
                state = neighbor.get("state")
                if state == "up":
                    received, done = 0, False  # a new session: ExaBGP cleared its Adj-RIB-In
                    emit(out, "established", received=0)
                elif state == "down":
                    emit(out, "down", received=received, reason=str(neighbor.get("reason", "")))
                continue
            if kind != "update":
                continue
            update = neighbor.get("message", {}).get("update", {})
            received += count_update(update)
            now = time.monotonic()
            if not done and received >= args.expect:
                done = True
                emit(out, "done", received=received)
            elif now - last_progress >= PROGRESS_PERIOD:
                last_progress = now
                emit(out, "progress", received=received)
    return 0


if __name__ == "__main__":
    sys.exit(main())
