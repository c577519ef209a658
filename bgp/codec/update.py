"""UPDATE message (RFC 4271 §4.3) with RFC 7606 outcomes, and End-of-RIB (RFC 4724 §2).

    +-----------------------------------------------------+
    |   Withdrawn Routes Length (2 octets)                |
    +-----------------------------------------------------+
    |   Withdrawn Routes (variable)                       |
    +-----------------------------------------------------+
    |   Total Path Attribute Length (2 octets)            |
    +-----------------------------------------------------+
    |   Path Attributes (variable)                        |
    +-----------------------------------------------------+
    |   Network Layer Reachability Information (variable) |
    +-----------------------------------------------------+

How an error surfaces (RFC 7606):

* session reset — `decode_update` raises `BgpError(handling=SESSION_RESET)`: lengths that hide
  the NLRI (§3 b), unparseable prefixes (§3 j, §5.3), MP_REACH/MP_UNREACH problems (§5.3, §7.11),
  a repeated MP attribute (§3 g), an unrecognized well-known attribute, and any non-discard error
  in an UPDATE that announces nothing (§5.2).
* treat-as-withdraw / attribute discard — the `Update` is returned with ``errors`` listing them
  and ``treat_as_withdraw`` set when any calls for it; `Update.announced_all` is then empty and
  `Update.withdrawn_all` covers every prefix in the message.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Network

import attrs

from bgp.codec.attr_mp import MpReachNlri, MpUnreachNlri
from bgp.codec.attributes import AttrType, PathAttributes, decode_attributes, encode_attributes
from bgp.codec.nlri import decode_ipv4_prefixes, encode_prefixes
from bgp.errors import BgpError, ErrorCode, Handling, UpdateSubcode
from bgp.types import IPV4_UNICAST, Family, Negotiated, Prefix


def _ipv4_tuple(prefixes: Iterable[IPv4Network]) -> tuple[IPv4Network, ...]:
    return tuple(prefixes)


def _error_tuple(errors: Iterable[BgpError]) -> tuple[BgpError, ...]:
    return tuple(errors)


@attrs.frozen
class Update:
    """An UPDATE. ``withdrawn``/``nlri`` are the classic IPv4 fields; other families travel in
    ``mp_reach``/``mp_unreach``. ``errors`` and ``treat_as_withdraw`` are set by the decoder only
    (never encoded)."""

    withdrawn: tuple[IPv4Network, ...] = attrs.field(default=(), converter=_ipv4_tuple)
    attributes: PathAttributes = attrs.field(factory=PathAttributes)
    nlri: tuple[IPv4Network, ...] = attrs.field(default=(), converter=_ipv4_tuple)
    mp_reach: MpReachNlri | None = None
    mp_unreach: MpUnreachNlri | None = None
    errors: tuple[BgpError, ...] = attrs.field(default=(), converter=_error_tuple)
    treat_as_withdraw: bool = False

    def announced_all(self) -> list[Prefix]:
        """Every prefix announced (classic NLRI and MP_REACH); none when treat-as-withdraw."""
        if self.treat_as_withdraw:
            return []
        return [*self.nlri, *(self.mp_reach.nlri if self.mp_reach else ())]

    def withdrawn_all(self) -> list[Prefix]:
        """Every prefix withdrawn (classic and MP_UNREACH), plus all announced ones under
        treat-as-withdraw."""
        out: list[Prefix] = [
            *self.withdrawn,
            *(self.mp_unreach.withdrawn if self.mp_unreach else ()),
        ]
        if self.treat_as_withdraw:
            out.extend(self.nlri)
            out.extend(self.mp_reach.nlri if self.mp_reach else ())
        return out


def end_of_rib(family: Family) -> Update:
    """The End-of-RIB marker: an empty UPDATE for IPv4 unicast, else an empty MP_UNREACH_NLRI."""
    if family == IPV4_UNICAST:
        return Update()
    return Update(mp_unreach=MpUnreachNlri(family[0], family[1]))


def end_of_rib_family(update: Update) -> Family | None:
    """The family whose End-of-RIB ``update`` is, or None."""
    if (
        update.withdrawn
        or update.nlri
        or update.mp_reach is not None
        or update.errors
        or update.attributes != PathAttributes()
    ):
        return None
    if update.mp_unreach is None:
        return IPV4_UNICAST
    return None if update.mp_unreach.withdrawn else update.mp_unreach.family


def is_end_of_rib(update: Update) -> bool:
    return end_of_rib_family(update) is not None


def encode_update(update: Update, negotiated: Negotiated) -> bytes:
    """UPDATE body (after the header)."""
    withdrawn = encode_prefixes(update.withdrawn)
    block = encode_attributes(update.attributes, negotiated, update.mp_reach, update.mp_unreach)
    if len(withdrawn) > 0xFFFF or len(block) > 0xFFFF:
        raise ValueError("withdrawn routes or path attributes exceed 65535 octets")
    return (
        len(withdrawn).to_bytes(2, "big")
        + withdrawn
        + len(block).to_bytes(2, "big")
        + block
        + encode_prefixes(update.nlri)
    )


def _reset(subcode: UpdateSubcode, reason: str, data: bytes = b"") -> BgpError:
    return BgpError(
        ErrorCode.UPDATE_MESSAGE_ERROR,
        subcode,
        data,
        handling=Handling.SESSION_RESET,
        reason=reason,
    )


def decode_update(body: bytes, negotiated: Negotiated) -> Update:
    """Parse an UPDATE body; see the module docstring for how errors surface."""
    if len(body) < 4:
        raise _reset(UpdateSubcode.MALFORMED_ATTRIBUTE_LIST, f"UPDATE body of {len(body)} octets")
    withdrawn_len = int.from_bytes(body[0:2], "big")
    attrs_at = 2 + withdrawn_len + 2
    if attrs_at > len(body):
        raise _reset(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"withdrawn routes length {withdrawn_len} overruns the message",
        )
    attrs_len = int.from_bytes(body[attrs_at - 2 : attrs_at], "big")
    nlri_at = attrs_at + attrs_len
    if nlri_at > len(body):
        raise _reset(
            UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
            f"total path attribute length {attrs_len} overruns the message",
        )
    withdrawn = decode_ipv4_prefixes(body[2 : 2 + withdrawn_len], what="withdrawn routes")
    nlri = decode_ipv4_prefixes(body[nlri_at:])
    block = decode_attributes(body[attrs_at:nlri_at], negotiated, has_classic_nlri=bool(nlri))
    errors = list(block.errors)
    reach = block.mp_reach
    announces = bool(nlri) or (reach is not None and bool(reach.nlri))
    if announces and block.complete:
        mandatory = [AttrType.ORIGIN, AttrType.AS_PATH] + ([AttrType.NEXT_HOP] if nlri else [])
        errors.extend(
            BgpError(
                ErrorCode.UPDATE_MESSAGE_ERROR,
                UpdateSubcode.MISSING_WELL_KNOWN_ATTRIBUTE,
                bytes([code]),
                handling=Handling.TREAT_AS_WITHDRAW,
                reason=f"missing {code.name}",  # RFC 7606 §3 d
            )
            for code in mandatory
            if code not in block.codes
        )
    serious = [error for error in errors if error.handling > Handling.ATTRIBUTE_DISCARD]
    only_unreach = block.complete and block.codes <= {AttrType.MP_UNREACH_NLRI}
    if serious and not announces and not only_unreach:
        # RFC 7606 §5.2: nothing to treat as withdrawn, so the error resets the session.
        raise serious[0].with_handling(Handling.SESSION_RESET)
    return Update(
        withdrawn=withdrawn,
        attributes=block.attributes,
        nlri=nlri,
        mp_reach=reach,
        mp_unreach=block.mp_unreach,
        errors=errors,
        treat_as_withdraw=any(e.handling is Handling.TREAT_AS_WITHDRAW for e in errors),
    )
