"""Repeated HTTP GETs against one URL: who answered, what failed, and when.

    python -m appliance.lab.traffic.http_loop http://198.51.100.10:8080/ \\
        --duration 10 [--count 1000] [--concurrency 4] [--timeout 2] [--interval 0]

Each request is a fresh connection (``Connection: close``). The response body names the endpoint
(see ``endpoint_server``). Stops at ``--count`` requests or after ``--duration`` seconds, whichever
comes first, and prints a JSON report: per-endpoint counts, errors by kind and error windows
(first/last failure of each run of consecutive failures, seconds since the start).
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from appliance.lab.traffic.accounting import HttpTally
from appliance.lab.traffic.netio import (
    bounded_float,
    bounded_int,
    connect_tcp,
    emit_json,
    error_kind,
    raise_fd_limit,
)

MAX_DURATION = 3600.0
MAX_COUNT = 1_000_000
MAX_RESPONSE = 1 << 20


class FetchError(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@attrs.frozen
class Target:
    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http://host[:port]/path URLs are supported, got {url!r}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname, parts.port or 80, path)

    def request(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {host}:{self.port}\r\n"
            "User-Agent: triolb-http-loop\r\nConnection: close\r\n\r\n"
        ).encode()


def parse_response(raw: bytes) -> str:
    """Endpoint name from a complete response; raises FetchError for anything but a 200."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise FetchError("bad_response" if raw else "eof")
    status_line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        raise FetchError("bad_response")
    if status_line[1] != b"200":
        raise FetchError(f"http_{status_line[1].decode(errors='replace')}")
    return body.decode(errors="replace").strip() or "(empty)"


async def fetch(target: Target, timeout: float) -> str:
    try:
        with trio.fail_after(timeout):
            stream = await connect_tcp(target.host, target.port)
            async with stream:
                await stream.send_all(target.request())
                raw = bytearray()
                while len(raw) <= MAX_RESPONSE:
                    chunk = await stream.receive_some(65536)
                    if not chunk:
                        break
                    raw += chunk
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        raise FetchError(error_kind(exc)) from exc
    return parse_response(bytes(raw))


class _Budget:
    """Hands out request slots until ``count`` are issued."""

    def __init__(self, count: int) -> None:
        self.left = count

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True


async def _worker(
    target: Target, args: argparse.Namespace, tally: HttpTally, budget: _Budget, until: float
) -> None:
    while trio.current_time() < until and budget.take():
        started = trio.current_time()
        try:
            name = await fetch(target, args.timeout)
        except FetchError as exc:
            tally.failure(exc.kind, trio.current_time(), started)
        else:
            tally.success(name, trio.current_time())
        if args.interval:
            await trio.sleep(args.interval)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    target = Target.from_url(args.url)
    tally = HttpTally()
    budget = _Budget(args.count)
    wall_start = time.time()
    start = trio.current_time()
    until = start + args.duration
    with trio.move_on_after(args.duration + args.timeout + 1.0):
        async with trio.open_nursery() as nursery:
            for _ in range(args.concurrency):
                nursery.start_soon(_worker, target, args, tally, budget, until)
    end = trio.current_time()
    report = tally.report(end - start, origin=start)
    report.update(url=args.url, concurrency=args.concurrency, started_at=round(wall_start, 3))
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="http_loop", description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("--duration", type=bounded_float(0.1, MAX_DURATION), required=True)
    parser.add_argument("--count", type=bounded_int(1, MAX_COUNT), default=MAX_COUNT)
    parser.add_argument("--concurrency", type=bounded_int(1, 256), default=1)
    parser.add_argument("--timeout", type=bounded_float(0.05, 60), default=2.0)
    parser.add_argument("--interval", type=bounded_float(0, 60), default=0.0)
    parser.add_argument("--output", default=None, help="also write the JSON report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    emit_json(trio.run(run, args), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
