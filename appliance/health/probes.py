"""The probe executors: one async function per probe type, each bounded by ``timeout_ms``.

`run_probe(address, port, probe)` probes one endpoint (``port``: the endpoint's, used when the
probe has none) and returns a `ProbeResult`; it never raises for a network outcome. Latency is
measured on trio's clock from the start of the probe to its verdict.

* ``icmp``: one echo request (raw socket; as non-root, a ping socket), up when the echo reply
  with our identifier and sequence number arrives from the endpoint.
* ``tcp``: up when the connection is established; it is then reset (no TIME_WAIT on the node).
* ``udp``: sends ``send`` (empty datagram without it) to the port; up when a reply arrives that
  contains ``expect`` (any reply without it). An ICMP port unreachable is "refused", silence
  "timeout", another reply "reply mismatch".
* ``http`` / ``https``: ``GET path`` (``Connection: close``, redirects not followed, TLS
  certificates not verified: endpoints commonly use self-signed ones); up when the status is
  ``expect_status`` and, with ``expect_body``, the first `MAX_BODY` bytes of the body contain it.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable

import httpx
import trio

from appliance.checksum import internet_checksum
from appliance.config.model import Probe, ProbeType
from appliance.config.values import IPAddress

from .state import ProbeResult

MAX_BODY = 64 * 1024  # bytes of an HTTP body searched for expect_body
MAX_DATAGRAM = 65535
USER_AGENT = "triolb-health/1"
ICMP_PAYLOAD = b"triolb-health-probe"

ProbeFunction = Callable[[IPAddress, int, Probe], Awaitable[ProbeResult]]


class ProbeFailed(Exception):
    """A probe's verdict "down", with its short reason."""


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timeout",
    errno.EADDRNOTAVAIL: "address not available",
    errno.EPERM: "not permitted",
    errno.EACCES: "not permitted",
}


def describe_error(exc: BaseException) -> str:
    """A short reason for a failed probe, from ``exc`` or what caused it."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ProbeFailed):
            return str(cur)
        if isinstance(cur, ssl.SSLError):
            return "tls error"
        if isinstance(cur, OSError) and cur.errno in _ERRNO_REASONS:
            return _ERRNO_REASONS[cur.errno]
        if isinstance(cur, OSError) and cur.errno is not None:
            return errno.errorcode.get(cur.errno, str(cur.errno)).lower()
        if isinstance(cur, httpx.TimeoutException):
            return "timeout"
        if isinstance(cur, BaseExceptionGroup) and cur.exceptions:  # trio's connect attempts
            cur = cur.exceptions[0]
            continue
        cur = cur.__cause__ or cur.__context__
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return "protocol error"
    return type(exc).__name__


def _family(address: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


# --- tcp ------------------------------------------------------------------------------------


async def probe_tcp(address: IPAddress, port: int, probe: Probe) -> None:
    with trio.socket.socket(_family(address), socket.SOCK_STREAM) as sock:
        # close with a reset: a probe every few seconds must not fill the TIME_WAIT table
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await sock.connect((str(address), port))


# --- udp ------------------------------------------------------------------------------------


async def probe_udp(address: IPAddress, port: int, probe: Probe) -> None:
    payload = (probe.send or "").encode()
    expect = probe.expect.encode() if probe.expect is not None else None
    with trio.socket.socket(_family(address), socket.SOCK_DGRAM) as sock:
        # connected: the kernel turns an ICMP port unreachable into ECONNREFUSED on recv
        await sock.connect((str(address), port))
        await sock.send(payload)
        reply = await sock.recv(MAX_DATAGRAM)
    if expect is not None and expect not in reply:
        raise ProbeFailed("reply mismatch")


# --- icmp -----------------------------------------------------------------------------------

ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129
SOL_RAW = 255
ICMP_FILTER = 1  # linux/icmp.h: bitmask of ICMP types a raw socket does NOT receive

_sequence = itertools.count(1)


#: RFC 1071, as ICMP uses it
icmp_checksum = internet_checksum


def echo_request(version: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP (v4) or ICMPv6 echo request; the kernel fills in the ICMPv6 checksum."""
    if version == 6:
        return struct.pack("!BBHHH", ICMP6_ECHO_REQUEST, 0, 0, ident, seq) + payload
    head = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    checksum = icmp_checksum(head + payload)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum, ident, seq) + payload


def parse_echo_reply(
    version: int, packet: bytes, *, has_ip_header: bool
) -> tuple[int, int, bytes] | None:
    """(identifier, sequence, payload) of an echo reply, None for any other packet.

    A raw IPv4 socket receives the IP header too; ICMPv6 and ping sockets do not."""
    if has_ip_header:
        if len(packet) < 20:
            return None
        packet = packet[(packet[0] & 0x0F) * 4 :]
    if len(packet) < 8:
        return None
    kind, _code, _sum, ident, seq = struct.unpack("!BBHHH", packet[:8])
    if kind != (ICMP6_ECHO_REPLY if version == 6 else ICMP_ECHO_REPLY):
        return None
    return ident, seq, packet[8:]


def _icmp_socket(version: int) -> tuple[trio.socket.SocketType, bool]:
    """A raw ICMP socket (root), else an unprivileged ping socket; and whether it is raw."""
    family = socket.AF_INET6 if version == 6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if version == 6 else socket.IPPROTO_ICMP
    try:
        sock = trio.socket.socket(family, socket.SOCK_RAW, proto)
    except PermissionError:
        return trio.socket.socket(family, socket.SOCK_DGRAM, proto), False
    if version == 4:  # receive echo replies only, not every ICMP packet reaching the host
        blocked = ~(1 << ICMP_ECHO_REPLY) & 0xFFFFFFFF
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", blocked))
    return sock, True


async def probe_icmp(address: IPAddress, port: int, probe: Probe) -> None:
    version = address.version
    sock, raw = _icmp_socket(version)
    with sock:
        # connected: a raw socket then only receives packets from the endpoint
        await sock.connect((str(address), 0))
        ident = int.from_bytes(os.urandom(2), "big")
        if not raw:  # the kernel owns the identifier of a ping socket: its local "port"
            ident = sock.getsockname()[1]
        seq = next(_sequence) & 0xFFFF
        payload = ICMP_PAYLOAD + os.urandom(8)
        await sock.send(echo_request(version, ident, seq, payload))
        while True:
            packet = await sock.recv(MAX_DATAGRAM)
            reply = parse_echo_reply(version, packet, has_ip_header=raw and version == 4)
            if reply == (ident, seq, payload):
                return


# --- http / https ---------------------------------------------------------------------------

_tls_context: ssl.SSLContext | None = None


def insecure_tls_context() -> ssl.SSLContext:
    """One shared client context without certificate or host name verification."""
    global _tls_context
    if _tls_context is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _tls_context = ctx
    return _tls_context


def probe_url(kind: ProbeType, address: IPAddress, port: int, path: str) -> str:
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{kind.value}://{host}:{port}{path}"


# identity: the body is searched as sent, and a compressed one cannot expand beyond MAX_BODY
_HEADERS = {"User-Agent": USER_AGENT, "Connection": "close", "Accept-Encoding": "identity"}


async def probe_http(address: IPAddress, port: int, probe: Probe) -> None:
    timeout = probe.timeout_ms / 1000
    url = probe_url(probe.type, address, port, probe.path)
    async with (
        httpx.AsyncClient(
            verify=insecure_tls_context(),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_keepalive_connections=0),
            follow_redirects=False,
            trust_env=False,
        ) as client,
        client.stream("GET", url, headers=_HEADERS) as response,
    ):
        if response.status_code != probe.expect_status:
            raise ProbeFailed(f"status {response.status_code}")
        if probe.expect_body is None:
            return
        body = bytearray()
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= MAX_BODY:
                break
        text = bytes(body[:MAX_BODY]).decode(response.encoding or "utf-8", errors="replace")
        if probe.expect_body not in text:
            raise ProbeFailed("body mismatch")


# --- dispatch -------------------------------------------------------------------------------

_EXECUTORS: dict[ProbeType, Callable[[IPAddress, int, Probe], Awaitable[None]]] = {
    ProbeType.ICMP: probe_icmp,
    ProbeType.TCP: probe_tcp,
    ProbeType.UDP: probe_udp,
    ProbeType.HTTP: probe_http,
    ProbeType.HTTPS: probe_http,
}


async def run_probe(address: IPAddress, port: int, probe: Probe) -> ProbeResult:
    """Probe ``address``: ``probe.port`` or else ``port``; never longer than ``timeout_ms``."""
    if probe.type is ProbeType.NONE:
        return ProbeResult.success(0.0)
    executor = _EXECUTORS[probe.type]
    target_port = probe.port if probe.port is not None else port
    start = trio.current_time()
    try:
        with trio.move_on_after(probe.timeout_ms / 1000) as scope:
            await executor(address, target_port, probe)
    except (OSError, httpx.HTTPError, ProbeFailed, ssl.SSLError, ValueError) as exc:
        return ProbeResult.failure(describe_error(exc), trio.current_time() - start)
    if scope.cancelled_caught:
        return ProbeResult.failure("timeout", trio.current_time() - start)
    return ProbeResult.success(trio.current_time() - start)
