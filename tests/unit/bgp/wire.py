"""Hand-built wire fragments for the BGP codec tests (independent of the encoder)."""

from __future__ import annotations

from ipaddress import IPv4Address

from bgp.types import Negotiated

MARKER = b"\xff" * 16

# Sessions used across the tests.
OLD_EBGP = Negotiated(four_octet_as=False, local_asn=65100, peer_asn=65101, ebgp=True)
OLD_IBGP = Negotiated(four_octet_as=False, local_asn=65100, peer_asn=65100, ebgp=False)
NEW_EBGP = Negotiated(four_octet_as=True, local_asn=65100, peer_asn=65101, ebgp=True)
NEW_IBGP = Negotiated(four_octet_as=True, local_asn=65100, peer_asn=65100, ebgp=False)
EXTENDED = Negotiated(four_octet_as=True, extended_message=True, ebgp=False)
SESSIONS = [OLD_EBGP, OLD_IBGP, NEW_EBGP, NEW_IBGP]

WELL_KNOWN = 0x40
OPTIONAL = 0x80
OPTIONAL_TRANSITIVE = 0xC0


def message(msg_type: int, body: bytes) -> bytes:
    return MARKER + (19 + len(body)).to_bytes(2, "big") + bytes([msg_type]) + body


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10:
        return bytes([flags, code]) + len(value).to_bytes(2, "big") + value
    return bytes([flags, code, len(value)]) + value


def update_body(withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    return (
        len(withdrawn).to_bytes(2, "big")
        + withdrawn
        + len(attributes).to_bytes(2, "big")
        + attributes
        + nlri
    )


def update(withdrawn: bytes = b"", attributes: bytes = b"", nlri: bytes = b"") -> bytes:
    return message(2, update_body(withdrawn, attributes, nlri))


def origin(value: int = 0) -> bytes:
    return attr(WELL_KNOWN, 1, bytes([value]))


def as_path(*asns: int, size: int = 2) -> bytes:
    value = bytes([2, len(asns)]) + b"".join(a.to_bytes(size, "big") for a in asns) if asns else b""
    return attr(WELL_KNOWN, 2, value)


def next_hop(address: str = "192.168.80.252") -> bytes:
    return attr(WELL_KNOWN, 3, IPv4Address(address).packed)


def mandatory(size: int = 2) -> bytes:
    """ORIGIN IGP, AS_PATH 65101, NEXT_HOP 192.168.80.252."""
    return origin() + as_path(65101, size=size) + next_hop()


NLRI_VIP = bytes([24, 198, 51, 100])  # 198.51.100.0/24
