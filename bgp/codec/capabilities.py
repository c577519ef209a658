"""Capabilities carried in the OPEN Capabilities optional parameter (RFC 5492).

Each capability is a TLV:

    +------------------------------+
    | Capability Code (1 octet)    |
    +------------------------------+
    | Capability Length (1 octet)  |
    +------------------------------+
    | Capability Value (variable)  |
    +------------------------------+

Known codes decode to their own class; anything else is kept as `UnknownCapability` (code and
raw value) so that the session can still see it and echo it in an "Unsupported Capability"
NOTIFICATION. A known capability whose value has the wrong shape is an OPEN Message Error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import IntEnum
from typing import TypeAlias

import attrs

from bgp.errors import BgpError, ErrorCode, OpenSubcode
from bgp.types import MAX_ASN, Afi, Family, Safi, enum_or_int, family_of


class CapabilityCode(IntEnum):
    MULTIPROTOCOL = 1  # RFC 4760
    ROUTE_REFRESH = 2  # RFC 2918
    EXTENDED_MESSAGE = 6  # RFC 8654
    GRACEFUL_RESTART = 64  # RFC 4724
    FOUR_OCTET_AS = 65  # RFC 6793
    ENHANCED_ROUTE_REFRESH = 70  # RFC 7313


def _afi(value: int) -> int:
    return enum_or_int(Afi, value)


def _safi(value: int) -> int:
    return enum_or_int(Safi, value)


def _in_range(low: int, high: int) -> Callable[[object, attrs.Attribute[int], int], None]:
    def check(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if not low <= value <= high:
            raise ValueError(f"{attribute.name}={value} outside {low}..{high}")

    return check


@attrs.frozen
class MultiprotocolCapability:
    """RFC 4760 §8: AFI (2 octets), Reserved (1), SAFI (1)."""

    afi: int = attrs.field(converter=_afi, validator=_in_range(0, 0xFFFF))
    safi: int = attrs.field(converter=_safi, validator=_in_range(0, 0xFF))

    @property
    def family(self) -> Family | None:
        return family_of(self.afi, self.safi)


@attrs.frozen
class RouteRefreshCapability:
    """RFC 2918: empty value."""


@attrs.frozen
class EnhancedRouteRefreshCapability:
    """RFC 7313: empty value."""


@attrs.frozen
class ExtendedMessageCapability:
    """RFC 8654: empty value."""


@attrs.frozen
class FourOctetAsCapability:
    """RFC 6793: the speaker's 4-octet AS number."""

    asn: int = attrs.field(validator=_in_range(0, MAX_ASN))


@attrs.frozen
class GracefulRestartFamily:
    """One per-AFI/SAFI tuple of the Graceful Restart capability; F bit = forwarding preserved."""

    afi: int = attrs.field(converter=_afi, validator=_in_range(0, 0xFFFF))
    safi: int = attrs.field(converter=_safi, validator=_in_range(0, 0xFF))
    forwarding_preserved: bool = False


def _families(families: Iterable[GracefulRestartFamily]) -> tuple[GracefulRestartFamily, ...]:
    return tuple(families)


@attrs.frozen
class GracefulRestartCapability:
    """RFC 4724 §3 (N bit from RFC 8538).

        +--------------------------------------------------+
        | Restart Flags (4 bits) | Restart Time (12 bits)  |
        +--------------------------------------------------+
        | AFI (16 bits) | SAFI (8 bits) | Flags (8 bits)   |  repeated
        +--------------------------------------------------+

    Restart Flags: R (0x8) = restarting, N (0x4) = Graceful NOTIFICATION supported.
    Per-family Flags: F (0x80) = forwarding state preserved.
    """

    restart_time: int = attrs.field(default=0, validator=_in_range(0, 0xFFF))
    restart_state: bool = False
    notification: bool = False
    families: tuple[GracefulRestartFamily, ...] = attrs.field(default=(), converter=_families)


@attrs.frozen
class UnknownCapability:
    code: int = attrs.field(validator=_in_range(0, 0xFF))
    value: bytes = b""


Capability: TypeAlias = (
    MultiprotocolCapability
    | RouteRefreshCapability
    | EnhancedRouteRefreshCapability
    | ExtendedMessageCapability
    | FourOctetAsCapability
    | GracefulRestartCapability
    | UnknownCapability
)

_RESTART_R = 0x8
_RESTART_N = 0x4
_FORWARDING_F = 0x80


def _value(cap: Capability) -> tuple[int, bytes]:
    match cap:
        case MultiprotocolCapability(afi=afi, safi=safi):
            return CapabilityCode.MULTIPROTOCOL, afi.to_bytes(2, "big") + bytes([0, safi])
        case RouteRefreshCapability():
            return CapabilityCode.ROUTE_REFRESH, b""
        case EnhancedRouteRefreshCapability():
            return CapabilityCode.ENHANCED_ROUTE_REFRESH, b""
        case ExtendedMessageCapability():
            return CapabilityCode.EXTENDED_MESSAGE, b""
        case FourOctetAsCapability(asn=asn):
            return CapabilityCode.FOUR_OCTET_AS, asn.to_bytes(4, "big")
        case GracefulRestartCapability():
            flags = (_RESTART_R if cap.restart_state else 0) | (
                _RESTART_N if cap.notification else 0
            )
            out = bytearray(((flags << 12) | cap.restart_time).to_bytes(2, "big"))
            for fam in cap.families:
                out += fam.afi.to_bytes(2, "big")
                out += bytes([fam.safi, _FORWARDING_F if fam.forwarding_preserved else 0])
            return CapabilityCode.GRACEFUL_RESTART, bytes(out)
        case UnknownCapability(code=code, value=value):
            return code, value


def encode_capability(cap: Capability) -> bytes:
    """One capability TLV. Raises ValueError if its value exceeds 255 octets."""
    code, value = _value(cap)
    if len(value) > 0xFF:
        raise ValueError(f"capability {code} value of {len(value)} octets exceeds 255")
    return bytes([code, len(value)]) + value


def encode_capabilities(caps: Iterable[Capability]) -> bytes:
    return b"".join(encode_capability(cap) for cap in caps)


def _malformed(code: int, value: bytes, reason: str) -> BgpError:
    return BgpError(
        ErrorCode.OPEN_MESSAGE_ERROR,
        OpenSubcode.UNSPECIFIC,
        bytes([code, len(value) & 0xFF]) + value,
        reason=reason,
    )


def _decode_multiprotocol(value: bytes) -> Capability:
    if len(value) != 4:
        raise _malformed(CapabilityCode.MULTIPROTOCOL, value, "multiprotocol length is not 4")
    return MultiprotocolCapability(int.from_bytes(value[0:2], "big"), value[3])


def _empty(code: CapabilityCode, make: Callable[[], Capability]) -> Callable[[bytes], Capability]:
    def decode(value: bytes) -> Capability:
        if value:
            raise _malformed(code, value, f"{code.name} capability must be empty")
        return make()

    return decode


def _decode_four_octet_as(value: bytes) -> Capability:
    if len(value) != 4:
        raise _malformed(CapabilityCode.FOUR_OCTET_AS, value, "4-octet AS length is not 4")
    return FourOctetAsCapability(int.from_bytes(value, "big"))


def _decode_graceful_restart(value: bytes) -> Capability:
    if len(value) < 2 or (len(value) - 2) % 4:
        raise _malformed(
            CapabilityCode.GRACEFUL_RESTART, value, "graceful restart length is not 2 + 4n"
        )
    head = int.from_bytes(value[0:2], "big")
    flags = head >> 12
    families = [
        GracefulRestartFamily(
            int.from_bytes(value[pos : pos + 2], "big"),
            value[pos + 2],
            bool(value[pos + 3] & _FORWARDING_F),
        )
        for pos in range(2, len(value), 4)
    ]
    return GracefulRestartCapability(
        restart_time=head & 0xFFF,
        restart_state=bool(flags & _RESTART_R),
        notification=bool(flags & _RESTART_N),
        families=tuple(families),
    )


_DECODERS: dict[int, Callable[[bytes], Capability]] = {
    CapabilityCode.MULTIPROTOCOL: _decode_multiprotocol,
    CapabilityCode.ROUTE_REFRESH: _empty(CapabilityCode.ROUTE_REFRESH, RouteRefreshCapability),
    CapabilityCode.EXTENDED_MESSAGE: _empty(
        CapabilityCode.EXTENDED_MESSAGE, ExtendedMessageCapability
    ),
    CapabilityCode.GRACEFUL_RESTART: _decode_graceful_restart,
    CapabilityCode.FOUR_OCTET_AS: _decode_four_octet_as,
    CapabilityCode.ENHANCED_ROUTE_REFRESH: _empty(
        CapabilityCode.ENHANCED_ROUTE_REFRESH, EnhancedRouteRefreshCapability
    ),
}


def decode_capabilities(data: bytes) -> list[Capability]:
    """Parse the value of one Capabilities optional parameter (a run of TLVs)."""
    caps: list[Capability] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise BgpError(
                ErrorCode.OPEN_MESSAGE_ERROR,
                OpenSubcode.UNSPECIFIC,
                data[pos:],
                reason="truncated capability header",
            )
        code, length = data[pos], data[pos + 1]
        value = data[pos + 2 : pos + 2 + length]
        if len(value) != length:
            raise _malformed(code, value, f"capability {code} overruns its parameter")
        decoder = _DECODERS.get(code)
        caps.append(UnknownCapability(code, value) if decoder is None else decoder(value))
        pos += 2 + length
    return caps
