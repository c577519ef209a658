"""ROUTE-REFRESH message (RFC 2918 §3) with the RFC 7313 Message Subtype.

    0       7      15      23      31
    +-------+-------+-------+-------+
    |      AFI      |Subtype| SAFI  |
    +-------+-------+-------+-------+

Subtype 0 is a normal request, 1 Begin-of-Route-Refresh, 2 End-of-Route-Refresh. A BoRR/EoRR
whose body is not 4 octets is a ROUTE-REFRESH Message Error (RFC 7313 §5) with the whole message
as data. Other subtypes decode (the session must ignore them); octets after a normal request
(RFC 5291 ORF entries, which are not negotiated here) are ignored.
"""

from __future__ import annotations

from enum import IntEnum

import attrs

from bgp.errors import BgpError, ErrorCode, RouteRefreshSubcode
from bgp.types import Afi, Family, Safi, enum_or_int, family_of


class RouteRefreshSubtype(IntEnum):
    NORMAL = 0
    BEGIN = 1  # BoRR
    END = 2  # EoRR


def _afi(value: int) -> int:
    return enum_or_int(Afi, value)


def _safi(value: int) -> int:
    return enum_or_int(Safi, value)


def _subtype(value: int) -> int:
    return enum_or_int(RouteRefreshSubtype, value)


def _check_u16(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{attribute.name}={value} outside 0..65535")


def _check_u8(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{attribute.name}={value} outside 0..255")


@attrs.frozen
class RouteRefresh:
    afi: int = attrs.field(converter=_afi, validator=_check_u16)
    safi: int = attrs.field(converter=_safi, validator=_check_u8)
    subtype: int = attrs.field(default=0, converter=_subtype, validator=_check_u8)

    @property
    def family(self) -> Family | None:
        return family_of(self.afi, self.safi)


def encode_route_refresh(message: RouteRefresh) -> bytes:
    return message.afi.to_bytes(2, "big") + bytes([message.subtype, message.safi])


def decode_route_refresh(body: bytes, message: bytes = b"") -> RouteRefresh:
    """Parse a ROUTE-REFRESH body; ``message`` (the whole message) is the error data."""
    subtype = body[2] if len(body) > 2 else 0
    if len(body) < 4 or (
        subtype in (RouteRefreshSubtype.BEGIN, RouteRefreshSubtype.END) and len(body) != 4
    ):
        raise BgpError(
            ErrorCode.ROUTE_REFRESH_MESSAGE_ERROR,
            RouteRefreshSubcode.INVALID_MESSAGE_LENGTH,
            message or body,
            reason=f"ROUTE-REFRESH body of {len(body)} octets",
        )
    return RouteRefresh(int.from_bytes(body[0:2], "big"), body[3], subtype)
