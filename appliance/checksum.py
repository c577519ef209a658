"""The Internet checksum (RFC 1071): one's-complement sum of 16-bit words, complemented."""

from __future__ import annotations

import struct

__all__ = ["internet_checksum"]


def internet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
