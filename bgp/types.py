"""Value types shared by the BGP codec, session and RIB: address families and the negotiated
session parameters that change how messages are encoded and decoded."""

from __future__ import annotations

from enum import IntEnum
from ipaddress import IPv4Network, IPv6Network
from typing import TypeAlias, TypeVar

import attrs

AS_TRANS = 23456
"""The 2-octet placeholder for a 4-octet AS number (RFC 6793 §9)."""

MAX_ASN = 0xFFFF_FFFF

Prefix: TypeAlias = IPv4Network | IPv6Network


class Afi(IntEnum):
    """Address Family Identifier (IANA Address Family Numbers)."""

    IPV4 = 1
    IPV6 = 2


class Safi(IntEnum):
    """Subsequent Address Family Identifier (RFC 4760)."""

    UNICAST = 1
    MULTICAST = 2


Family: TypeAlias = tuple[Afi, Safi]

IPV4_UNICAST: Family = (Afi.IPV4, Safi.UNICAST)
IPV6_UNICAST: Family = (Afi.IPV6, Safi.UNICAST)
SUPPORTED_FAMILIES: frozenset[Family] = frozenset({IPV4_UNICAST, IPV6_UNICAST})
"""The families this codec can carry in MP_REACH_NLRI / MP_UNREACH_NLRI."""

_E = TypeVar("_E", bound=IntEnum)


def enum_or_int(enum: type[_E], value: int) -> int:
    """``enum(value)`` when the value is known, else the plain int (codes we merely carry)."""
    try:
        return enum(value)
    except ValueError:
        return int(value)


def family_of(afi: int, safi: int) -> Family | None:
    """The supported family for a wire AFI/SAFI pair, or None."""
    for family in SUPPORTED_FAMILIES:
        if family == (afi, safi):
            return family
    return None


@attrs.frozen
class Negotiated:
    """What the two OPENs agreed on; every encode/decode call takes one.

    The defaults describe the session before the OPEN exchange completes (2-octet AS, 4096-octet
    messages, IPv4 unicast only), which is all that decoding OPEN/NOTIFICATION/KEEPALIVE needs.
    ``ebgp`` changes RFC 7606 handling (e.g. LOCAL_PREF from an external peer is discarded) and
    makes the encoder leave out iBGP-only attributes.
    """

    four_octet_as: bool = False
    extended_message: bool = False
    families: frozenset[Family] = frozenset({IPV4_UNICAST})
    local_asn: int = 0
    peer_asn: int = 0
    ebgp: bool = True
    hold_time: int = 0
    route_refresh: bool = False
    enhanced_route_refresh: bool = False
