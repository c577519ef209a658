"""MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4) for IPv4/IPv6 unicast, with the
RFC 2545 IPv6 next hop (global, optionally followed by link-local).

    MP_REACH_NLRI                                 MP_UNREACH_NLRI
    +--------------------------------------+      +--------------------------------------+
    | AFI (2) | SAFI (1)                   |      | AFI (2) | SAFI (1)                   |
    | Length of Next Hop Address (1)       |      | Withdrawn Routes (variable)          |
    | Next Hop Address (variable)          |      +--------------------------------------+
    | Reserved (1)                         |
    | NLRI (variable)                      |
    +--------------------------------------+

Errors here mean the NLRI cannot be trusted, so they are session resets (RFC 7606 §5.3, §7.11:
too short, a next-hop length the family does not allow, a bad prefix, or a family we do not
carry — "AFI/SAFI disable" is not offered, so it becomes a reset). A syntactically fine but
unusable next hop (unspecified, multicast) is treat-as-withdraw, reported by
`mp_next_hop_problem`.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import attrs

from bgp.codec.nlri import decode_ipv4_prefixes, decode_ipv6_prefixes, encode_prefixes
from bgp.errors import BgpError, ErrorCode, Handling, UpdateSubcode
from bgp.types import Afi, Family, Prefix, Safi, family_of


def _prefix_tuple(prefixes: Iterable[Prefix]) -> tuple[Prefix, ...]:
    return tuple(prefixes)


def _check_family(afi: Afi, safi: Safi, prefixes: tuple[Prefix, ...]) -> None:
    if family_of(afi, safi) is None:
        raise ValueError(f"AFI {afi}/SAFI {safi} is not carried by this codec")
    kind = IPv4Network if afi is Afi.IPV4 else IPv6Network
    if any(not isinstance(prefix, kind) for prefix in prefixes):
        raise ValueError(f"prefix of the wrong version for AFI {afi.name}")


@attrs.frozen
class MpReachNlri:
    afi: Afi
    safi: Safi
    next_hop: IPv4Address | IPv6Address
    nlri: tuple[Prefix, ...] = attrs.field(default=(), converter=_prefix_tuple)
    link_local_next_hop: IPv6Address | None = None

    def __attrs_post_init__(self) -> None:
        _check_family(self.afi, self.safi, self.nlri)
        want = IPv4Address if self.afi is Afi.IPV4 else IPv6Address
        if not isinstance(self.next_hop, want):
            raise ValueError(f"next hop {self.next_hop} does not match AFI {self.afi.name}")
        if self.link_local_next_hop is not None and self.afi is not Afi.IPV6:
            raise ValueError("a link-local next hop needs AFI IPv6")

    @property
    def family(self) -> Family:
        return (self.afi, self.safi)


@attrs.frozen
class MpUnreachNlri:
    afi: Afi
    safi: Safi
    withdrawn: tuple[Prefix, ...] = attrs.field(default=(), converter=_prefix_tuple)

    def __attrs_post_init__(self) -> None:
        _check_family(self.afi, self.safi, self.withdrawn)

    @property
    def family(self) -> Family:
        return (self.afi, self.safi)


def _reset(reason: str) -> BgpError:
    return BgpError(
        ErrorCode.UPDATE_MESSAGE_ERROR,
        UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
        handling=Handling.SESSION_RESET,
        reason=reason,
    )


def _family(value: bytes, name: str) -> Family:
    afi = int.from_bytes(value[0:2], "big")
    family = family_of(afi, value[2])
    if family is None:
        raise _reset(f"{name} for unsupported AFI {afi}/SAFI {value[2]}")
    return family


def _prefixes(data: bytes, afi: Afi, name: str) -> tuple[Prefix, ...]:
    subcode = UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR
    if afi is Afi.IPV4:
        return tuple(decode_ipv4_prefixes(data, subcode, name))
    return tuple(decode_ipv6_prefixes(data, subcode, name))


def encode_mp_reach(reach: MpReachNlri) -> bytes:
    next_hop = reach.next_hop.packed
    if reach.link_local_next_hop is not None:
        next_hop += reach.link_local_next_hop.packed
    return (
        reach.afi.to_bytes(2, "big")
        + bytes([reach.safi, len(next_hop)])
        + next_hop
        + b"\x00"
        + encode_prefixes(reach.nlri)
    )


def decode_mp_reach(value: bytes) -> MpReachNlri:
    if len(value) < 5:
        raise _reset(f"MP_REACH_NLRI of {len(value)} octets")
    afi, safi = _family(value, "MP_REACH_NLRI")
    nh_len = value[3]
    if 4 + nh_len + 1 > len(value):
        raise _reset(f"MP_REACH_NLRI next hop length {nh_len} overruns the attribute")
    allowed = (4,) if afi is Afi.IPV4 else (16, 32)
    if nh_len not in allowed:
        raise _reset(f"MP_REACH_NLRI next hop length {nh_len} for {afi.name}")
    raw = value[4 : 4 + nh_len]
    nlri = _prefixes(value[5 + nh_len :], afi, "MP_REACH_NLRI")
    if afi is Afi.IPV4:
        return MpReachNlri(afi, safi, IPv4Address(raw), nlri)
    link_local = IPv6Address(raw[16:]) if nh_len == 32 else None
    return MpReachNlri(afi, safi, IPv6Address(raw[:16]), nlri, link_local)


def mp_next_hop_problem(reach: MpReachNlri) -> BgpError | None:
    """A treat-as-withdraw error when the next hop cannot be used, else None."""
    hop = reach.next_hop
    if hop.is_unspecified or hop.is_multicast or hop == IPv4Address("255.255.255.255"):
        return BgpError(
            ErrorCode.UPDATE_MESSAGE_ERROR,
            UpdateSubcode.OPTIONAL_ATTRIBUTE_ERROR,
            handling=Handling.TREAT_AS_WITHDRAW,
            reason=f"MP_REACH_NLRI next hop {hop} is not a unicast address",
        )
    return None


def encode_mp_unreach(unreach: MpUnreachNlri) -> bytes:
    return (
        unreach.afi.to_bytes(2, "big") + bytes([unreach.safi]) + encode_prefixes(unreach.withdrawn)
    )


def decode_mp_unreach(value: bytes) -> MpUnreachNlri:
    if len(value) < 3:
        raise _reset(f"MP_UNREACH_NLRI of {len(value)} octets")
    afi, safi = _family(value, "MP_UNREACH_NLRI")
    return MpUnreachNlri(afi, safi, _prefixes(value[3:], afi, "MP_UNREACH_NLRI"))
