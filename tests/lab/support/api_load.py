"""A bounded load on a node's web server, run inside the node's namespace: ``--rate``
requests per second for ``--seconds`` (at most rate x seconds requests), spread over the
dashboard page and the JSON documents it reads, plus ``--streams`` open event streams.
Prints a JSON report: requests sent, answered 200, failures (a sample), achieved rate.

    python -m tests.lab.support.api_load --base http://127.0.0.1:8080 --rate 200 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx
import trio

PATHS = (
    "/",
    "/api/v1/node",
    "/api/v1/ha",
    "/api/v1/bgp/neighbors",
    "/api/v1/services",
    "/api/v1/sync",
    "/api/v1/events",
    "/metrics",
)
WORKERS = 16
TIMEOUT_S = 5.0


async def _stream(client: httpx.AsyncClient, until: float, seen: Counter[str]) -> None:
    """Hold an event stream open until ``until``, counting its events."""
    with trio.move_on_at(until):
        async with client.stream("GET", "/api/v1/stream", timeout=None) as response:
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    seen[line.removeprefix("event: ")] += 1


async def run(base: str, rate: float, seconds: float, streams: int) -> dict[str, Any]:
    total = int(rate * seconds)
    start = trio.current_time()
    statuses: Counter[str] = Counter()
    stream_events: Counter[str] = Counter()
    failures: list[str] = []
    next_index = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal next_index
        while next_index < total:
            index = next_index
            next_index += 1
            await trio.sleep_until(start + index / rate)  # the schedule, not faster
            try:
                response = await client.get(PATHS[index % len(PATHS)], timeout=TIMEOUT_S)
                statuses[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                statuses["error"] += 1
                if len(failures) < 5:
                    failures.append(f"{type(exc).__name__}: {exc}")

    async with httpx.AsyncClient(base_url=base) as client, trio.open_nursery() as nursery:
        for _ in range(streams):
            nursery.start_soon(_stream, client, start + seconds + 1.0, stream_events)
        async with trio.open_nursery() as workers:
            for _ in range(WORKERS):
                workers.start_soon(worker, client)
    elapsed = trio.current_time() - start
    sent = sum(statuses.values())
    return {
        "sent": sent,
        "statuses": dict(statuses),
        "failures": failures,
        "elapsed_s": round(elapsed, 3),
        "rate": round(sent / elapsed, 1) if elapsed else None,
        "stream_events": dict(stream_events),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="http://127.0.0.1:8080")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 1000 and 0 < args.seconds <= 60):
        parser.error("rate 1-1000/s and seconds 1-60: a bounded load")
    began = time.monotonic()
    report = trio.run(run, args.base, args.rate, args.seconds, args.streams)
    report["wall_s"] = round(time.monotonic() - began, 3)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
