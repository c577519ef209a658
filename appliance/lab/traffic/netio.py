"""Small shared pieces of the traffic tools: bounded CLI arguments, TCP connect, error names."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import resource
import socket
import sys
from collections.abc import Callable
from typing import Any

import trio


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} not in [{low}, {high}]")
        return value

    return parse


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} not in [{low}, {high}]")
        return value

    return parse


def error_kind(exc: BaseException) -> str:
    """A short stable name for a network error: ``econnrefused``, ``econnreset``, ``timeout``…"""
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    if isinstance(exc, trio.BrokenResourceError):
        cause = exc.__cause__
        return error_kind(cause) if cause is not None else "econnreset"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno{exc.errno}").lower()
    if isinstance(exc, OSError):
        return "oserror"
    return type(exc).__name__.lower()


async def connect_tcp(host: str, port: int) -> trio.SocketStream:
    """Connect to ``host:port`` (first address only; errors keep their errno)."""
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(errno.EHOSTUNREACH, f"no address for {host}")
    family, type_, proto, _canon, addr = infos[0]
    sock = trio.socket.socket(family, type_, proto)
    try:
        await sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


def raise_fd_limit() -> None:
    """Many concurrent connections need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def emit_json(report: dict[str, Any], output: str | None) -> None:
    text = json.dumps(report, indent=None, sort_keys=True)
    if output:
        with open(output, "w") as fh:
            fh.write(text + "\n")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
