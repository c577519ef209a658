"""OPEN message (RFC 4271 §4.2) with RFC 9072 extended optional parameters, its validation
(RFC 4271 §6.2, RFC 5492, RFC 6286, RFC 6793, RFC 7607) and capability negotiation.

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+
    |    Version    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     My Autonomous System      |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           Hold Time           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                         BGP Identifier                        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    | Opt Parm Len  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |             Optional Parameters (variable)                    |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

RFC 9072: when Opt Parm Len is 255 and the next octet (Non-Ext OP Type) is also 255, a 2-octet
Extended Opt. Parm. Length follows and every parameter has a 2-octet length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from ipaddress import IPv4Address
from typing import TypeVar

import attrs

from bgp.codec.capabilities import (
    Capability,
    EnhancedRouteRefreshCapability,
    ExtendedMessageCapability,
    FourOctetAsCapability,
    MultiprotocolCapability,
    RouteRefreshCapability,
    UnknownCapability,
    decode_capabilities,
    encode_capabilities,
)
from bgp.errors import BgpError, ErrorCode, OpenSubcode
from bgp.types import AS_TRANS, IPV4_UNICAST, SUPPORTED_FAMILIES, Family, Negotiated

BGP_VERSION = 4
CAPABILITIES_PARAMETER = 2  # RFC 5492
EXTENDED_PARAMETERS_MARK = 255  # RFC 9072 Non-Ext OP Type

_C = TypeVar("_C", bound=Capability)


def _u16(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{attribute.name}={value} does not fit in 2 octets")


def _parameter_type(_instance: object, _attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value < EXTENDED_PARAMETERS_MARK or value == CAPABILITIES_PARAMETER:
        raise ValueError(f"optional parameter type {value} is reserved or not raw")


def _capability_tuple(caps: Iterable[Capability]) -> tuple[Capability, ...]:
    return tuple(caps)


@attrs.frozen
class OptionalParameter:
    """An optional parameter other than Capabilities, kept raw (e.g. deprecated type 1)."""

    type: int = attrs.field(validator=_parameter_type)
    value: bytes = b""


def _parameter_tuple(params: Iterable[OptionalParameter]) -> tuple[OptionalParameter, ...]:
    return tuple(params)


@attrs.frozen
class Open:
    """An OPEN as on the wire: ``my_as`` is the 2-octet field (AS_TRANS for a 4-octet AS).

    All Capabilities parameters are flattened into ``capabilities`` in wire order; other optional
    parameters are kept in ``parameters`` so that `validate_open` can reject them. Build one for
    the local speaker with `Open.for_speaker`.
    """

    my_as: int = attrs.field(validator=_u16)
    hold_time: int = attrs.field(validator=_u16)
    identifier: IPv4Address
    capabilities: tuple[Capability, ...] = attrs.field(default=(), converter=_capability_tuple)
    parameters: tuple[OptionalParameter, ...] = attrs.field(default=(), converter=_parameter_tuple)

    @classmethod
    def for_speaker(
        cls,
        asn: int,
        hold_time: int,
        identifier: IPv4Address,
        capabilities: Iterable[Capability] = (),
    ) -> Open:
        """OPEN for AS ``asn``: My AS is AS_TRANS above 65535; a 4-octet AS capability is added."""
        caps: list[Capability] = [
            cap for cap in capabilities if not isinstance(cap, FourOctetAsCapability)
        ]
        caps.append(FourOctetAsCapability(asn))
        return cls(asn if asn <= 0xFFFF else AS_TRANS, hold_time, identifier, caps)

    @property
    def asn(self) -> int:
        """The speaker's AS: the 4-octet AS capability if present, else My AS (RFC 6793 §4.1)."""
        four = self.capability(FourOctetAsCapability)
        return four.asn if four is not None else self.my_as

    def capability(self, kind: type[_C]) -> _C | None:
        """The first capability of class ``kind``, or None."""
        for cap in self.capabilities:
            if isinstance(cap, kind):
                return cap
        return None

    def families(self) -> frozenset[Family]:
        """Supported families advertised; IPv4 unicast if no MP capability is sent (RFC 4760 §8)."""
        mp = [cap for cap in self.capabilities if isinstance(cap, MultiprotocolCapability)]
        if not mp:
            return frozenset({IPV4_UNICAST})
        return frozenset(fam for cap in mp if (fam := cap.family) is not None)


def _open_error(subcode: OpenSubcode, reason: str, data: bytes = b"") -> BgpError:
    return BgpError(ErrorCode.OPEN_MESSAGE_ERROR, subcode, data, reason=reason)


def _fits_classic(params: list[tuple[int, bytes]]) -> bool:
    return all(len(value) <= 0xFF for _, value in params) and (
        sum(2 + len(value) for _, value in params) <= 0xFF
    )


def _classic(params: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(bytes([kind, len(value)]) + value for kind, value in params)
    return bytes([len(body)]) + body


def _extended(params: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(bytes([kind]) + len(value).to_bytes(2, "big") + value for kind, value in params)
    if len(body) > 0xFFFF:
        raise ValueError("optional parameters exceed 65535 octets")
    mark = bytes([EXTENDED_PARAMETERS_MARK, EXTENDED_PARAMETERS_MARK])
    return mark + len(body).to_bytes(2, "big") + body


def encode_open(message: Open) -> bytes:
    """OPEN body (after the header): all capabilities in one Capabilities parameter, in the
    classic format when it fits in 255 octets, else in the RFC 9072 extended format."""
    caps = encode_capabilities(message.capabilities)
    params = [(CAPABILITIES_PARAMETER, caps)] if caps else []
    params.extend((param.type, param.value) for param in message.parameters)
    return (
        bytes([BGP_VERSION])
        + message.my_as.to_bytes(2, "big")
        + message.hold_time.to_bytes(2, "big")
        + message.identifier.packed
        + (_classic(params) if _fits_classic(params) else _extended(params))
    )


def decode_open(body: bytes) -> Open:
    """Parse an OPEN body; raise OPEN Message Error for a bad version or malformed parameters."""
    if len(body) < 10:
        raise _open_error(OpenSubcode.UNSPECIFIC, f"OPEN body of {len(body)} octets")
    if body[0] != BGP_VERSION:
        raise _open_error(
            OpenSubcode.UNSUPPORTED_VERSION_NUMBER,
            f"version {body[0]}",
            BGP_VERSION.to_bytes(2, "big"),
        )
    my_as = int.from_bytes(body[1:3], "big")
    hold_time = int.from_bytes(body[3:5], "big")
    identifier = IPv4Address(body[5:9])
    opt_len = body[9]
    if opt_len == 0xFF and len(body) > 10 and body[10] == EXTENDED_PARAMETERS_MARK:
        if len(body) < 13:
            raise _open_error(OpenSubcode.UNSPECIFIC, "truncated extended parameters length")
        ext_len = int.from_bytes(body[11:13], "big")
        data, size = body[13:], 2
        if len(data) != ext_len:
            raise _open_error(
                OpenSubcode.UNSPECIFIC, f"extended parameters length {ext_len} != {len(data)}"
            )
    else:
        data, size = body[10:], 1
        if len(data) != opt_len:
            raise _open_error(
                OpenSubcode.UNSPECIFIC, f"optional parameters length {opt_len} != {len(data)}"
            )
    capabilities: list[Capability] = []
    parameters: list[OptionalParameter] = []
    pos = 0
    while pos < len(data):
        if pos + 1 + size > len(data):
            raise _open_error(OpenSubcode.UNSPECIFIC, "truncated optional parameter header")
        kind = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 1 + size], "big")
        value = data[pos + 1 + size : pos + 1 + size + length]
        if len(value) != length:
            raise _open_error(OpenSubcode.UNSPECIFIC, f"optional parameter {kind} overruns")
        if kind == CAPABILITIES_PARAMETER:
            capabilities.extend(decode_capabilities(value))
        elif kind == EXTENDED_PARAMETERS_MARK:
            raise _open_error(OpenSubcode.UNSPECIFIC, "reserved optional parameter type 255")
        else:
            parameters.append(OptionalParameter(kind, value))
        pos += 1 + size + length
    return Open(my_as, hold_time, identifier, capabilities, parameters)


def _same_kind(required: Capability, cap: Capability) -> bool:
    """Whether ``cap`` satisfies ``required``: same family for MP, same code otherwise."""
    if isinstance(required, MultiprotocolCapability | UnknownCapability):
        return required == cap or (
            isinstance(required, UnknownCapability)
            and isinstance(cap, UnknownCapability)
            and required.code == cap.code
        )
    return type(required) is type(cap)


def validate_open(
    message: Open,
    expected_peer_asn: int | None,
    *,
    local_identifier: IPv4Address | None = None,
    local_asn: int | None = None,
    required_capabilities: Iterable[Capability] = (),
) -> None:
    """Check a received OPEN against the session's configuration; raise the OPEN Message Error
    the RFCs name (RFC 4271 §6.2 order: peer AS, BGP Identifier, optional parameters, hold time,
    then RFC 5492 required capabilities).

    * AS 0 (RFC 7607), AS_TRANS as the speaker's own AS (RFC 6793) or an AS other than
      ``expected_peer_asn`` → Bad Peer AS.
    * Identifier 0, or equal to ``local_identifier`` on an iBGP session (RFC 6286) → Bad BGP
      Identifier.
    * Any optional parameter other than Capabilities → Unsupported Optional Parameter.
    * Hold time 1 or 2 → Unacceptable Hold Time.
    * A capability in ``required_capabilities`` that the peer did not send → Unsupported
      Capability, with the missing capabilities as data.
    """
    asn = message.asn
    if asn in (0, AS_TRANS) or message.my_as == 0:
        raise _open_error(OpenSubcode.BAD_PEER_AS, f"peer AS {asn} is reserved")
    if expected_peer_asn is not None and asn != expected_peer_asn:
        raise _open_error(OpenSubcode.BAD_PEER_AS, f"peer AS {asn}, configured {expected_peer_asn}")
    if int(message.identifier) == 0:
        raise _open_error(OpenSubcode.BAD_BGP_IDENTIFIER, "BGP identifier is 0")
    if message.identifier == local_identifier and local_asn == asn:
        raise _open_error(
            OpenSubcode.BAD_BGP_IDENTIFIER, f"iBGP peer uses our identifier {local_identifier}"
        )
    if message.parameters:
        raise _open_error(
            OpenSubcode.UNSUPPORTED_OPTIONAL_PARAMETER,
            f"optional parameter type {message.parameters[0].type}",
        )
    if message.hold_time in (1, 2):
        raise _open_error(
            OpenSubcode.UNACCEPTABLE_HOLD_TIME,
            f"hold time {message.hold_time}",
            message.hold_time.to_bytes(2, "big"),
        )
    missing = [
        required
        for required in required_capabilities
        if not any(_same_kind(required, cap) for cap in message.capabilities)
    ]
    if missing:
        raise _open_error(
            OpenSubcode.UNSUPPORTED_CAPABILITY,
            "peer lacks required capabilities",
            encode_capabilities(missing),
        )


def _both(local: Open, peer: Open, kind: Callable[[Open], object]) -> bool:
    return kind(local) is not None and kind(peer) is not None


def negotiate(local_open: Open, peer_open: Open, local_asn: int) -> Negotiated:
    """Combine both OPENs: features both sides advertise, families in common (limited to the
    families this codec carries), the smaller hold time, and iBGP vs eBGP."""
    peer_asn = peer_open.asn
    return Negotiated(
        four_octet_as=_both(local_open, peer_open, lambda o: o.capability(FourOctetAsCapability)),
        extended_message=_both(
            local_open, peer_open, lambda o: o.capability(ExtendedMessageCapability)
        ),
        families=local_open.families() & peer_open.families() & SUPPORTED_FAMILIES,
        local_asn=local_asn,
        peer_asn=peer_asn,
        ebgp=local_asn != peer_asn,
        hold_time=min(local_open.hold_time, peer_open.hold_time),
        route_refresh=_both(local_open, peer_open, lambda o: o.capability(RouteRefreshCapability)),
        enhanced_route_refresh=_both(
            local_open, peer_open, lambda o: o.capability(EnhancedRouteRefreshCapability)
        ),
    )
