"""Small value types of the configuration, each with a parser and a canonical text form.

Parsers raise ``ValueError`` with a message fit for a user (the config layer adds path and line).
"""

from __future__ import annotations

import ipaddress
from typing import TypeAlias

import attrs

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF


def parse_ip(text: str) -> IPAddress:
    """An IPv4 or IPv6 address (no prefix length, no zone)."""
    if "%" in text:
        raise ValueError(f"zone index not allowed in an address: {text!r}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {text!r}") from None


def parse_ipv4(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"not an IPv4 address: {text!r}") from None


def parse_network(text: str) -> IPNetwork:
    """A strict CIDR: host bits must be zero (``198.51.100.0/24``, not ``198.51.100.1/24``)."""
    if "/" not in text or "%" in text:
        raise ValueError(f"not a CIDR (address/prefix length): {text!r}")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"host bits set in {text!r} (did you mean {fixed}?)") from None
        raise ValueError(f"not a CIDR: {text!r}") from None


@attrs.frozen
class SocketAddress:
    """An address and port, written ``192.0.2.1:80`` or ``[2001:db8::1]:80``."""

    host: IPAddress
    port: int

    def __str__(self) -> str:
        if self.host.version == 6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, default_port: int | None = None) -> SocketAddress:
        """Parse ``addr:port`` / ``[v6]:port``; a bare address takes ``default_port`` if given."""
        host_text, port_text = _split_host_port(text)
        host = parse_ip(host_text)
        if port_text is None:
            if default_port is None:
                raise ValueError(f"port missing in {text!r} (expected address:port)")
            return cls(host, default_port)
        if not port_text.isdigit() or not 1 <= int(port_text) <= U16_MAX:
            raise ValueError(f"port must be 1-65535 in {text!r}")
        return cls(host, int(port_text))


def _split_host_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"missing ']' in {text!r}")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError(f"expected ':port' after ']' in {text!r}")
        return host, rest[1:]
    if text.count(":") > 1:  # a bare IPv6 address: no port
        return text, None
    host, sep, port = text.partition(":")
    return host, (port if sep else None)


@attrs.frozen
class Community:
    """An RFC 1997 community ``ASN:value`` (two 16-bit halves)."""

    asn: int
    value: int

    def __str__(self) -> str:
        return f"{self.asn}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Community:
        parts = _int_parts(text, 2, U16_MAX, "ASN:value with 16-bit parts")
        return cls(parts[0], parts[1])


@attrs.frozen
class LargeCommunity:
    """An RFC 8092 large community ``global:local1:local2`` (three 32-bit parts)."""

    global_admin: int
    local1: int
    local2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"

    @classmethod
    def parse(cls, text: str) -> LargeCommunity:
        parts = _int_parts(text, 3, U32_MAX, "a:b:c with 32-bit parts")
        return cls(parts[0], parts[1], parts[2])


def _int_parts(text: str, count: int, maximum: int, shape: str) -> list[int]:
    parts = text.split(":")
    if len(parts) != count or not all(p.isdigit() and int(p) <= maximum for p in parts):
        raise ValueError(f"not {shape}: {text!r}")
    return [int(p) for p in parts]


@attrs.frozen
class PrefixFilter:
    """Accept routes inside ``prefix`` whose length is within ``ge``..``le`` (inclusive)."""

    prefix: IPNetwork
    ge: int
    le: int

    @classmethod
    def exact(cls, prefix: IPNetwork) -> PrefixFilter:
        return cls(prefix, prefix.prefixlen, prefix.prefixlen)

    @property
    def is_exact(self) -> bool:
        return self.ge == self.le == self.prefix.prefixlen

    def matches(self, route: IPNetwork) -> bool:
        return (
            route.version == self.prefix.version
            and self.ge <= route.prefixlen <= self.le
            and route.network_address in self.prefix
        )
