"""Long-lived TCP echo streams that notice every lost, late or reset message.

    python -m appliance.lab.traffic.stream_client --host 192.168.80.101 --port 9000 \\
        --streams 8 --rate 50 --duration 10 [--count N] [--stall-ms 200] [--reconnect]

Each stream keeps one connection and sends sequence-numbered messages at ``--rate`` per second
until ``--duration`` seconds or ``--count`` messages, then waits up to ``--drain`` seconds for
the last echoes. Prints a JSON report: per-stream sent/echoed, gaps (missing sequence ranges),
stalls (no echo for more than ``--stall-ms`` while waiting; longest), resets (RST or EOF).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

import trio

from appliance.lab.traffic.accounting import (
    LineDecoder,
    StreamAccounting,
    encode_message,
    stream_summary,
)
from appliance.lab.traffic.netio import (
    bounded_float,
    bounded_int,
    connect_tcp,
    emit_json,
    error_kind,
    raise_fd_limit,
)

MAX_DURATION = 3600.0
MAX_COUNT = 10_000_000
RECONNECT_PAUSE = 0.2


class _Connection:
    """One TCP connection of a stream; ``dead`` once a reset/EOF was recorded."""

    def __init__(self, stream: trio.SocketStream, acc: StreamAccounting) -> None:
        self.stream = stream
        self.acc = acc
        self.dead = False
        self.scope = trio.CancelScope()

    def lost(self, reason: str) -> None:
        if not self.dead:
            self.dead = True
            self.acc.on_reset(trio.current_time(), reason)
        self.scope.cancel()

    async def receive(self) -> None:
        decoder = LineDecoder()
        try:
            while True:
                data = await self.stream.receive_some(65536)
                if not data:
                    self.lost("eof")
                    return
                now = trio.current_time()
                for seq in decoder.feed(data):
                    self.acc.on_echo(seq, now)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.lost(error_kind(exc))
        except ValueError:
            self.lost("garbled")

    async def send(self, args: argparse.Namespace, send_until: float) -> None:
        interval = 1.0 / args.rate
        next_at = trio.current_time()
        while self.acc.sent < args.count and trio.current_time() < send_until:
            seq = self.acc.next_seq()
            self.acc.on_sent(seq, trio.current_time())
            try:
                await self.stream.send_all(encode_message(self.acc.stream, seq, args.size))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self.lost(error_kind(exc))
                return
            next_at = max(next_at + interval, trio.current_time() - interval)
            await trio.sleep_until(min(next_at, send_until))

    async def run(self, args: argparse.Namespace, send_until: float) -> None:
        with self.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self.receive)
                await self.send(args, send_until)
                with trio.move_on_after(args.drain):
                    while self.acc.outstanding and not self.dead:
                        await trio.sleep(0.005)
                nursery.cancel_scope.cancel()
        await trio.aclose_forcefully(self.stream)


async def run_stream(args: argparse.Namespace, acc: StreamAccounting, send_until: float) -> None:
    while acc.sent < args.count and trio.current_time() < send_until:
        try:
            with trio.fail_after(args.connect_timeout):
                stream = await connect_tcp(args.host, args.port)
        except (OSError, trio.TooSlowError) as exc:
            acc.on_connect_error(error_kind(exc))
            if not args.reconnect:
                return
            await trio.sleep(RECONNECT_PAUSE)
            continue
        acc.on_connect()
        connection = _Connection(stream, acc)
        await connection.run(args, send_until)
        if not connection.dead or not args.reconnect:
            return
        await trio.sleep(RECONNECT_PAUSE)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    streams = [StreamAccounting(i, args.stall_ms / 1000.0) for i in range(args.streams)]
    start = trio.current_time()
    send_until = start + args.duration
    hard_stop = args.duration + args.drain + args.connect_timeout + 5.0
    with trio.move_on_after(hard_stop):
        async with trio.open_nursery() as nursery:
            for acc in streams:
                nursery.start_soon(run_stream, args, acc, send_until)
    end = trio.current_time()
    for acc in streams:
        acc.finish(end)
    report = stream_summary(streams, end - start)
    report["target"] = f"{args.host}:{args.port}"
    report["rate_per_stream"] = args.rate
    report["stall_threshold_ms"] = args.stall_ms
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stream_client", description=__doc__.split("\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=bounded_int(1, 65535), required=True)
    parser.add_argument("--duration", type=bounded_float(0.1, MAX_DURATION), required=True)
    parser.add_argument("--streams", type=bounded_int(1, 1000), default=4)
    parser.add_argument("--rate", type=bounded_float(0.1, 10000), default=20.0)
    parser.add_argument("--count", type=bounded_int(1, MAX_COUNT), default=None)
    parser.add_argument("--size", type=bounded_int(16, 65536), default=64)
    parser.add_argument("--stall-ms", type=bounded_float(1, 600_000), default=200.0)
    parser.add_argument("--drain", type=bounded_float(0, 60), default=2.0)
    parser.add_argument("--connect-timeout", type=bounded_float(0.1, 60), default=3.0)
    parser.add_argument("--reconnect", action="store_true", help="reconnect after a reset")
    parser.add_argument("--output", default=None, help="also write the JSON report here")
    args = parser.parse_args(argv)
    if args.count is None:
        args.count = min(MAX_COUNT, math.ceil(args.rate * args.duration) + 1)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    emit_json(trio.run(run, args), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
