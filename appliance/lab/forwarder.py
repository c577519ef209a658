"""A TCP forwarder from the root namespace's loopback into a lab namespace's loopback.

    python -m appliance.lab.forwarder --listen-port 8081 --netns tlb3fa2-node1 \\
        --target-port 8080 --max-seconds 3600

The demo shows each node's dashboard (listening on 127.0.0.1:8080 *inside* the node's network
namespace) to a browser on the host. This process binds ``127.0.0.1:<listen-port>`` while it is
still in the root namespace, then moves itself into the lab namespace with ``setns(2)``: the
listening socket stays in the root namespace (a socket keeps the namespace it was created in),
every upstream connection it opens afterwards is made inside the lab namespace. Bytes are copied
both ways as they come, so server-sent events stream through unchanged.

Bounded: at most ``--max-connections`` at a time (more wait in the accept backlog), exits after
``--max-seconds``, on SIGTERM/SIGINT, or as soon as its parent (the demo) is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import functools
import os
import socket
import sys
from collections.abc import Sequence

import trio

from appliance.lab.procs import NETNS_RUN_DIR, check_namespace
from appliance.lab.traffic.netio import bounded_float, bounded_int

CLONE_NEWNET = 0x40000000
LOOPBACK = "127.0.0.1"
CHUNK = 65536
CONNECT_TIMEOUT = 5.0
PARENT_CHECK_S = 1.0
MAX_SECONDS = 7 * 86400.0


def enter_namespace(ns: str) -> None:
    """Move this (single-threaded) process into the lab network namespace ``ns``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd = os.open(NETNS_RUN_DIR / check_namespace(ns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def bind_loopback(port: int) -> socket.socket:
    """The listening socket, on the *current* namespace's 127.0.0.1 only."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return sock


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    """Copy ``source`` to ``sink`` until EOF (then half-close ``sink``) or an error."""
    try:
        while data := await source.receive_some(CHUNK):
            await sink.send_all(data)
        await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass


async def _bridge(target_port: int, slots: trio.Semaphore, client: trio.SocketStream) -> None:
    """One proxied connection: both directions until both ended or one broke."""
    async with client, slots:
        try:
            with trio.fail_after(CONNECT_TIMEOUT):
                upstream = await trio.open_tcp_stream(LOOPBACK, target_port)
        except (OSError, trio.TooSlowError):
            return  # the daemon is not (yet) listening: the browser sees a closed connection
        async with upstream, trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, upstream)
            nursery.start_soon(_pump, upstream, client)


async def _watch_parent(parent: int, cancel: trio.CancelScope) -> None:
    while os.getppid() == parent:
        await trio.sleep(PARENT_CHECK_S)
    cancel.cancel()


async def serve(listener: socket.socket, args: argparse.Namespace) -> None:
    slots = trio.Semaphore(args.max_connections)
    parent = os.getppid()
    with trio.move_on_after(args.max_seconds) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_parent, parent, scope)
            sock = trio.socket.from_stdlib_socket(listener)
            await trio.serve_listeners(
                functools.partial(_bridge, args.target_port, slots),
                [trio.SocketListener(sock)],
            )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="forwarder", description=__doc__.split("\n")[0])
    parser.add_argument("--listen-port", type=bounded_int(1, 65535), required=True)
    parser.add_argument("--netns", required=True, help="lab namespace name (tlbXXXX-host)")
    parser.add_argument("--target-port", type=bounded_int(1, 65535), default=8080)
    parser.add_argument("--max-connections", type=bounded_int(1, 1024), default=64)
    parser.add_argument("--max-seconds", type=bounded_float(1, MAX_SECONDS), default=3600.0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (NETNS_RUN_DIR / check_namespace(args.netns)).exists():
        print(f"no namespace {args.netns}", file=sys.stderr)
        return 2
    listener = bind_loopback(args.listen_port)  # in the root namespace
    enter_namespace(args.netns)  # from here on, connections are made in the lab namespace
    print(
        f"listening on {LOOPBACK}:{args.listen_port} -> {args.netns} {LOOPBACK}:{args.target_port}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve, listener, args, restrict_keyboard_interrupt_to_checkpoints=True)
    return 0


def argv_for(listen_port: int, ns: str, target_port: int, max_seconds: float) -> list[str]:
    """The command line starting a forwarder with this interpreter."""
    return [
        sys.executable,
        "-m",
        "appliance.lab.forwarder",
        f"--listen-port={listen_port}",
        f"--netns={ns}",
        f"--target-port={target_port}",
        f"--max-seconds={max_seconds:g}",
    ]


if __name__ == "__main__":
    sys.exit(main())
