"""Community attributes: COMMUNITIES (RFC 1997), EXTENDED COMMUNITIES (RFC 4360) and
LARGE_COMMUNITY (RFC 8092).

A community is a 32-bit int (high 16 bits: AS, low 16 bits: value); an extended community a
64-bit int, kept opaque. A large community is three 32-bit fields:

    +----------------------------------+
    | Global Administrator (4 octets)  |
    | Local Data Part 1 (4 octets)     |
    | Local Data Part 2 (4 octets)     |
    +----------------------------------+

All three are malformed when empty or not a whole number of values: treat-as-withdraw
(RFC 7606 §7.8, §7.14; RFC 8092 §6). Duplicate large communities are silently removed (RFC 8092 §5).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import attrs

from bgp.errors import BgpError, ErrorCode, Handling, UpdateSubcode
from bgp.types import MAX_ASN


class WellKnownCommunity(IntEnum):
    GRACEFUL_SHUTDOWN = 0xFFFF0000  # RFC 8326
    ACCEPT_OWN = 0xFFFF0001  # RFC 7611
    LLGR_STALE = 0xFFFF0006  # RFC 9494
    NO_LLGR = 0xFFFF0007  # RFC 9494
    BLACKHOLE = 0xFFFF029A  # RFC 7999
    NO_EXPORT = 0xFFFFFF01  # RFC 1997
    NO_ADVERTISE = 0xFFFFFF02  # RFC 1997
    NO_EXPORT_SUBCONFED = 0xFFFFFF03  # RFC 1997
    NOPEER = 0xFFFFFF04  # RFC 3765


_WELL_KNOWN = {c.value: c for c in WellKnownCommunity}
_BY_NAME = {c.name: c for c in WellKnownCommunity}


def community(asn: int, value: int) -> int:
    """The community ``asn:value`` (each 0..65535)."""
    if not (0 <= asn <= 0xFFFF and 0 <= value <= 0xFFFF):
        raise ValueError(f"community {asn}:{value} out of range")
    return (asn << 16) | value


def format_community(value: int) -> str:
    """``NO_EXPORT`` for well-known values, else ``asn:value``."""
    known = _WELL_KNOWN.get(value)
    if known is not None:
        return known.name
    return f"{value >> 16}:{value & 0xFFFF}"


def parse_community(text: str) -> int:
    """Inverse of `format_community` (well-known names are case-insensitive)."""
    known = _BY_NAME.get(text.strip().upper().replace("-", "_"))
    if known is not None:
        return int(known)
    high, sep, low = text.partition(":")
    if not sep:
        raise ValueError(f"community {text!r} is not ASN:VALUE or a well-known name")
    return community(int(high), int(low))


def _malformed(name: str, value: bytes, unit: int) -> BgpError:
    return BgpError(
        ErrorCode.UPDATE_MESSAGE_ERROR,
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
        handling=Handling.TREAT_AS_WITHDRAW,
        reason=f"{name} length {len(value)} is not a non-zero multiple of {unit}",
    )


def encode_communities(values: Iterable[int]) -> bytes:
    return b"".join(value.to_bytes(4, "big") for value in values)


def decode_communities(value: bytes) -> tuple[int, ...]:
    if not value or len(value) % 4:
        raise _malformed("COMMUNITIES", value, 4)
    return tuple(int.from_bytes(value[i : i + 4], "big") for i in range(0, len(value), 4))


def encode_extended_communities(values: Iterable[int]) -> bytes:
    return b"".join(value.to_bytes(8, "big") for value in values)


def decode_extended_communities(value: bytes) -> tuple[int, ...]:
    if not value or len(value) % 8:
        raise _malformed("EXTENDED_COMMUNITIES", value, 8)
    return tuple(int.from_bytes(value[i : i + 8], "big") for i in range(0, len(value), 8))


def _u32(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= MAX_ASN:
        raise ValueError(f"{attribute.name}={value} does not fit in 4 octets")


@attrs.frozen(order=True)
class LargeCommunity:
    global_admin: int = attrs.field(validator=_u32)
    local_data1: int = attrs.field(validator=_u32)
    local_data2: int = attrs.field(validator=_u32)

    @classmethod
    def parse(cls, text: str) -> LargeCommunity:
        """``"65000:1:2"`` → LargeCommunity(65000, 1, 2)."""
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"large community {text!r} is not A:B:C")
        return cls(int(parts[0]), int(parts[1]), int(parts[2]))

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local_data1}:{self.local_data2}"


def encode_large_communities(values: Iterable[LargeCommunity]) -> bytes:
    return b"".join(
        v.global_admin.to_bytes(4, "big")
        + v.local_data1.to_bytes(4, "big")
        + v.local_data2.to_bytes(4, "big")
        for v in values
    )


def decode_large_communities(value: bytes) -> tuple[LargeCommunity, ...]:
    if not value or len(value) % 12:
        raise _malformed("LARGE_COMMUNITY", value, 12)
    found: dict[LargeCommunity, None] = {}
    for i in range(0, len(value), 12):
        found.setdefault(
            LargeCommunity(
                int.from_bytes(value[i : i + 4], "big"),
                int.from_bytes(value[i + 4 : i + 8], "big"),
                int.from_bytes(value[i + 8 : i + 12], "big"),
            )
        )
    return tuple(found)
