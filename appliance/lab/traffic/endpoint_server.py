"""Lab endpoint: an HTTP server whose body names the endpoint, plus a TCP and UDP echo server.

    python -m appliance.lab.traffic.endpoint_server --name ep1 --duration 3600 \\
        [--http-port 8080] [--echo-port 9000] [--bind 0.0.0.0] [--max-connections 4096] \\
        [--https-port 8443 --tls-cert cert.pem --tls-key key.pem]

Every GET/HEAD (any path) gets ``200`` with body ``<name>\\n`` and ``Connection: close`` (also
over TLS on ``--https-port``). The echo port (TCP, and UDP datagram by datagram) sends back
whatever it receives. The server exits after ``--duration`` seconds (or on SIGTERM/SIGINT) and
prints a JSON summary; "listening" is printed once all ports are bound.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import attrs
import trio

from appliance.lab.traffic.netio import (
    bounded_float,
    bounded_int,
    emit_json,
    raise_fd_limit,
)

MAX_REQUEST_HEAD = 16384
REQUEST_TIMEOUT = 10.0
MAX_DURATION = 7 * 86400


def http_response(request_head: bytes, name: str) -> bytes:
    """The complete response to one request head (pure; exposed for the unit tests)."""
    line = request_head.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return _response(400, "Bad Request", b"bad request\n")
    method = parts[0]
    if method not in (b"GET", b"HEAD"):
        return _response(405, "Method Not Allowed", b"method not allowed\n")
    body = f"{name}\n".encode()
    return _response(200, "OK", body, head_only=method == b"HEAD")


def _response(status: int, reason: str, body: bytes, head_only: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode()
    return head if head_only else head + body


@attrs.define
class ServerStats:
    http_connections: int = 0
    http_requests: int = 0
    echo_connections: int = 0
    echo_bytes: int = 0
    udp_datagrams: int = 0
    active: int = 0
    max_active: int = 0

    def enter(self) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        self.active -= 1


async def _read_head(stream: trio.abc.Stream) -> bytes | None:
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return None
        data += chunk
        if len(data) > MAX_REQUEST_HEAD:
            return b"TOO LARGE\r\n\r\n"
    return bytes(data)


async def handle_http(name: str, stats: ServerStats, stream: trio.abc.Stream) -> None:
    stats.http_connections += 1
    try:
        with trio.move_on_after(REQUEST_TIMEOUT):
            head = await _read_head(stream)
            if head is not None:
                stats.http_requests += 1
                await stream.send_all(http_response(head, name))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def handle_echo(stats: ServerStats, stream: trio.SocketStream) -> None:
    stats.echo_connections += 1
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            stats.echo_bytes += len(data)
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


def _guarded(
    handler: Callable[[trio.abc.Stream], Awaitable[None]],
    limiter: trio.CapacityLimiter,
    stats: ServerStats,
) -> Callable[[trio.abc.Stream], Awaitable[None]]:
    async def run(stream: trio.abc.Stream) -> None:
        async with limiter:
            stats.enter()
            try:
                await handler(stream)
            except Exception as exc:  # one bad connection must not stop the server
                print(f"handler error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            finally:
                stats.leave()
                with contextlib.suppress(trio.BrokenResourceError, OSError):
                    await trio.aclose_forcefully(stream)

    return run


async def udp_echo(
    bind: str, port: int, stats: ServerStats, *, task_status: trio.TaskStatus[None]
) -> None:
    with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        await sock.bind((bind, port))
        task_status.started()
        while True:
            data, peer = await sock.recvfrom(65535)
            stats.udp_datagrams += 1
            with contextlib.suppress(OSError):
                await sock.sendto(data, peer)


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    stats = ServerStats()
    limiter = trio.CapacityLimiter(args.max_connections)
    started = time.monotonic()
    with (
        trio.move_on_after(args.duration),
        trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals,
    ):
        async with trio.open_nursery() as nursery:
            http = await trio.open_tcp_listeners(args.http_port, host=args.bind)
            echo = await trio.open_tcp_listeners(args.echo_port, host=args.bind)
            http_handler = _guarded(partial(handle_http, args.name, stats), limiter, stats)
            echo_handler = _guarded(partial(handle_echo, stats), limiter, stats)
            nursery.start_soon(trio.serve_listeners, http_handler, http)
            nursery.start_soon(trio.serve_listeners, echo_handler, echo)
            await nursery.start(udp_echo, args.bind, args.echo_port, stats)
            https = ""
            if args.https_port is not None:
                ctx = tls_context(args.tls_cert, args.tls_key)
                tls = await trio.open_ssl_over_tcp_listeners(args.https_port, ctx, host=args.bind)
                nursery.start_soon(trio.serve_listeners, http_handler, tls)
                https = f" https={args.bind}:{args.https_port}"
            print(
                f"listening name={args.name} http={args.bind}:{args.http_port} "
                f"echo={args.bind}:{args.echo_port}{https}",
                flush=True,
            )
            async for _signum in signals:
                nursery.cancel_scope.cancel()
                break
    return {
        "name": args.name,
        "uptime_s": round(time.monotonic() - started, 3),
        **attrs.asdict(stats),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="endpoint_server", description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="endpoint name returned in the HTTP body")
    parser.add_argument("--duration", required=True, type=bounded_float(0.1, MAX_DURATION))
    parser.add_argument("--http-port", type=bounded_int(1, 65535), default=8080)
    parser.add_argument("--echo-port", type=bounded_int(1, 65535), default=9000)
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--max-connections", type=bounded_int(1, 65536), default=4096)
    parser.add_argument("--https-port", type=bounded_int(1, 65535), default=None)
    parser.add_argument("--tls-cert", help="PEM certificate for --https-port")
    parser.add_argument("--tls-key", help="PEM private key for --https-port")
    args = parser.parse_args(argv)
    if args.https_port is not None and not (args.tls_cert and args.tls_key):
        parser.error("--https-port needs --tls-cert and --tls-key")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit()
    emit_json(trio.run(serve, args), None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
