"""The demo's gentle traffic, run inside the client namespace, with a live status file.

    python -m appliance.lab.demo_traffic --vip 198.51.100.10 --status FILE \\
        [--http-port 80 --http-rate 3] [--echo-port 9000 --streams 4 --stream-rate 2] \\
        [--max-seconds 3600]

Two loops, both bounded in rate and in total time:

- HTTP: ``--http-rate`` GETs per second to the VIP's web service (a fresh connection each, at
  most a few in flight), counted per answering endpoint and per error kind;
- streams: ``--streams`` long-lived TCP connections to the VIP's echo service, each sending
  ``--stream-rate`` sequence-numbered messages per second and checking every echo (the
  stream client of :mod:`appliance.lab.traffic.stream_client`, without reconnecting: a stream
  that was reset stays dead, which is what a failover must not cause).

Every ``STATUS_INTERVAL_S`` the status file is rewritten atomically: per stream sent / echoed /
missing / resets / longest stall, the HTTP tally, and ``done`` once the run ended. The demo and
``triolb lab failover`` read it to say whether the streams survived.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from appliance.lab.traffic.accounting import HttpTally, StreamAccounting
from appliance.lab.traffic.http_loop import FetchError, Target, fetch
from appliance.lab.traffic.netio import bounded_float, bounded_int
from appliance.lab.traffic.stream_client import run_stream

STATUS_INTERVAL_S = 0.5
#: a stall above this is recorded (a failover through BGP stalls streams for seconds)
STALL_THRESHOLD_S = 1.0
HTTP_TIMEOUT_S = 2.0
MAX_HTTP_IN_FLIGHT = 4
MAX_SECONDS = 86400.0


def write_status(path: Path, status: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(status, sort_keys=True))
    os.replace(tmp, path)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        value: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value


def stream_args(args: argparse.Namespace) -> argparse.Namespace:
    """The options :func:`run_stream` expects, for the demo's streams."""
    return argparse.Namespace(
        host=args.vip,
        port=args.echo_port,
        rate=args.stream_rate,
        count=math.ceil(args.stream_rate * args.max_seconds) + 1,
        size=64,
        drain=2.0,
        connect_timeout=3.0,
        reconnect=False,
    )


def snapshot(
    streams: list[StreamAccounting], tally: HttpTally, start: float, done: bool
) -> dict[str, Any]:
    """The status document: streams (alive = connected once, never reset) and HTTP."""
    now = trio.current_time()
    reports = [s.report(origin=start) for s in streams]
    alive = sum(1 for s in streams if s.connects and not s.resets and not done)
    return {
        "elapsed_s": round(now - start, 1),
        "done": done,
        "streams": {
            "count": len(streams),
            "alive": alive,
            "connected": sum(1 for s in streams if s.connects),
            "resets": sum(len(s.resets) for s in streams),
            "connect_errors": sum(s.connect_errors for s in streams),
            "sent": sum(s.sent for s in streams),
            "echoed": sum(s.echoed for s in streams),
            "missing": sum(int(r["missing"]) for r in reports),
            "longest_stall_ms": max((float(r["longest_stall_ms"]) for r in reports), default=0),
            "per_stream": reports,
        },
        "http": tally.report(now - start, origin=start),
    }


async def _one_get(target: Target, tally: HttpTally, slots: trio.Semaphore) -> None:
    async with slots:
        started = trio.current_time()
        try:
            name = await fetch(target, HTTP_TIMEOUT_S)
        except FetchError as exc:
            tally.failure(exc.kind, trio.current_time(), started)
        else:
            tally.success(name, trio.current_time())


async def http_loop(args: argparse.Namespace, tally: HttpTally, until: float) -> None:
    """``--http-rate`` GETs per second until ``until``; a slow VIP never piles requests up
    (at most ``MAX_HTTP_IN_FLIGHT``; the others are skipped, not queued)."""
    target = Target(args.vip, args.http_port, "/")
    slots = trio.Semaphore(MAX_HTTP_IN_FLIGHT)
    interval = 1.0 / args.http_rate
    async with trio.open_nursery() as nursery:
        while trio.current_time() < until:
            if slots.value:
                nursery.start_soon(_one_get, target, tally, slots)
            await trio.sleep(interval)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    streams = [StreamAccounting(i, STALL_THRESHOLD_S) for i in range(args.streams)]
    tally = HttpTally()
    start = trio.current_time()
    until = start + args.max_seconds
    options = stream_args(args)

    async def report_loop() -> None:
        while True:
            write_status(args.status, snapshot(streams, tally, start, done=False))
            await trio.sleep(STATUS_INTERVAL_S)

    with trio.move_on_after(args.max_seconds + 10.0):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(report_loop)
            async with trio.open_nursery() as traffic:
                if args.http_rate:
                    traffic.start_soon(http_loop, args, tally, until)
                for acc in streams:
                    traffic.start_soon(run_stream, options, acc, until)
            nursery.cancel_scope.cancel()
    final = snapshot(streams, tally, start, done=True)
    write_status(args.status, final)
    return final


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="demo_traffic", description=__doc__.split("\n")[0])
    parser.add_argument("--vip", required=True)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--http-port", type=bounded_int(1, 65535), default=80)
    parser.add_argument("--http-rate", type=bounded_float(0, 20), default=3.0)
    parser.add_argument("--echo-port", type=bounded_int(1, 65535), default=9000)
    parser.add_argument("--streams", type=bounded_int(1, 32), default=4)
    parser.add_argument("--stream-rate", type=bounded_float(0.1, 20), default=2.0)
    parser.add_argument("--max-seconds", type=bounded_float(1, MAX_SECONDS), default=3600.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"traffic to {args.vip} for at most {args.max_seconds:g}s", flush=True)
    final = trio.run(run, args)
    summary = {k: v for k, v in final["streams"].items() if k != "per_stream"}
    print(json.dumps({"streams": summary, "http_ok": final["http"]["ok"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
