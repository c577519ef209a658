"""TCP for BGP sessions: listening and connecting sockets with MD5, GTSM and TTL applied.

Options are set on the socket before `connect`/`listen`, which is why this builds trio sockets
itself instead of using `trio.open_tcp_stream`.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

import attrs
import trio

from .sockopts import IPAddress, set_gtsm, set_md5_key, set_ttl


@attrs.frozen
class PeerTransport:
    """How to reach one peer: address, port and the socket options its session needs."""

    address: IPAddress
    port: int = 179
    md5_key: bytes | None = None
    gtsm: bool = False
    ttl: int | None = None  # eBGP multihop TTL; None: the system default
    local_address: IPAddress | None = None


def _family(address: IPAddress) -> int:
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def _apply(sock: trio.socket.SocketType, peer: PeerTransport) -> None:
    family = _family(peer.address)
    raw = socket.socket(fileno=sock.fileno())
    try:
        if peer.md5_key:
            set_md5_key(raw, peer.address, peer.md5_key)
        if peer.gtsm:
            set_gtsm(raw, family)
        elif peer.ttl is not None:
            set_ttl(raw, family, peer.ttl)
    finally:
        raw.detach()


async def connect_peer(peer: PeerTransport) -> trio.SocketStream:
    """Open a TCP connection to `peer` (raises OSError on failure)."""
    sock = trio.socket.socket(_family(peer.address), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _apply(sock, peer)
        if peer.local_address is not None:
            await sock.bind((str(peer.local_address), 0))
        await sock.connect((str(peer.address), peer.port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def open_listener(
    port: int, peers: list[PeerTransport], host: str = "::"
) -> trio.SocketListener:
    """Listen on `port` (dual-stack); MD5 keys of every peer are installed on the socket."""
    try:
        sock = trio.socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    except OSError as exc:  # no IPv6 in this namespace
        if exc.errno != errno.EAFNOSUPPORT:
            raise
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        host = "0.0.0.0"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        raw = socket.socket(fileno=sock.fileno())
        try:
            for peer in peers:
                if peer.md5_key:
                    set_md5_key(raw, _listener_view(peer.address, sock.family), peer.md5_key)
                if peer.gtsm:
                    set_gtsm(raw, sock.family)
        finally:
            raw.detach()
        await sock.bind((host, port))
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)


def _listener_view(address: IPAddress, family: int) -> IPAddress:
    """An IPv4 peer as a dual-stack socket sees it: the v4-mapped IPv6 address."""
    if family == socket.AF_INET6 and address.version == 4:
        return ipaddress.IPv6Address(f"::ffff:{address}")
    return address


def remote_address(stream: trio.SocketStream) -> IPAddress:
    """The peer address of an accepted stream, v4-mapped addresses unmapped."""
    host = stream.socket.getpeername()[0]
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def local_address(stream: trio.SocketStream) -> IPAddress:
    host = stream.socket.getsockname()[0]
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
