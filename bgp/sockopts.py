"""Socket options a BGP session needs: TCP-MD5 (RFC 2385), GTSM (RFC 5082) and TTL.

Plain functions over a socket's file descriptor number; the Trio shell calls them on its
sockets before connecting (or on the listening socket, whose accepted connections inherit the
MD5 keys).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

TCP_MD5SIG = 14
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = 21
IPV6_MINHOPCOUNT = 73
SOCKADDR_STORAGE_SIZE = 128
GTSM_TTL = 255

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _sockaddr_storage(address: IPAddress) -> bytes:
    if address.version == 4:
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + address.packed
    else:
        raw = struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", 0, 0) + address.packed
        raw += struct.pack("=I", 0)
    return raw.ljust(SOCKADDR_STORAGE_SIZE, b"\0")


def md5sig_option(peer: IPAddress, key: bytes) -> bytes:
    """The `struct tcp_md5sig` for `peer` (an empty key removes the peer's key)."""
    if len(key) > TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP-MD5 key longer than {TCP_MD5SIG_MAXKEYLEN} octets")
    # flags, prefixlen, keylen, ifindex, key
    tail = struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(TCP_MD5SIG_MAXKEYLEN, b"\0")
    return _sockaddr_storage(peer) + tail


def set_md5_key(sock: socket.socket, peer: IPAddress, key: bytes) -> None:
    """Sign (and require signatures on) segments to and from `peer` with `key`."""
    sock.setsockopt(socket.IPPROTO_TCP, TCP_MD5SIG, md5sig_option(peer, key))


def set_ttl(sock: socket.socket, family: int, ttl: int) -> None:
    """Outgoing TTL / hop limit (eBGP multihop)."""
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)


def set_gtsm(sock: socket.socket, family: int, hops: int = 1) -> None:
    """RFC 5082: send with TTL 255 and drop segments whose TTL shows more than `hops` hops."""
    set_ttl(sock, family, GTSM_TTL)
    minimum = GTSM_TTL - (hops - 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, minimum)
    else:
        sock.setsockopt(socket.IPPROTO_IP, IP_MINTTL, minimum)


def read_password_file(path: str) -> bytes:
    """A TCP-MD5 password file: its content without the trailing newline."""
    with open(path, "rb") as handle:
        return handle.read().rstrip(b"\r\n")
