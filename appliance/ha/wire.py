"""VRRPv3 advertisement codec (RFC 5798 §5.1) with an optional triolb authentication trailer.

Layout of the VRRP message (the IP payload)::

    byte 0      version (4 bits, = 3) | type (4 bits, = 1 ADVERTISEMENT)
    byte 1      VRID
    byte 2      priority
    byte 3      count of IPvX addresses
    bytes 4-5   reserved (4 bits, = 0) | Max Advertise Interval (12 bits, centiseconds)
    bytes 6-7   checksum
    then        count addresses, 4 bytes each (IPv4) or 16 bytes each (IPv6)

The checksum is the Internet checksum of the message and a pseudo-header (RFC 5798 §5.2.8,
clarified for IPv4 by RFC 9568): for IPv4 source, destination, zero, protocol 112, 16-bit
length; for IPv6 (RFC 8200 §8.1) source, destination, 32-bit length, three zero bytes, next
header 112. The length and the summed bytes are those of the VRRP message alone.

Without authentication the packet is exactly that message, so any standard VRRPv3 speaker is a
correct peer. Between triolb peers an authentication trailer may follow the message::

    byte 0      key id
    bytes 1-8   counter (big-endian, strictly increasing per sender)
    bytes 9-40  HMAC-SHA256(key, message || counter)

The receiver accepts the current or the previous key (key rotation) and rejects a counter that
is not greater than the last one accepted from the same source (`ReplayGuard`).

The IP header (protocol 112, TTL 255, group 224.0.0.18 / ff02::12) belongs to the shell;
`check_ttl` is the TTL rule.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct

import attrs

from appliance.checksum import internet_checksum
from appliance.config.values import IPAddress

from .errors import HaError, HaErrorReason

__all__ = [
    "AUTH_TRAILER_LENGTH",
    "HEADER_LENGTH",
    "IPPROTO_VRRP",
    "MAX_INTERVAL_CS",
    "TTL",
    "VRRP_GROUP_V4",
    "VRRP_GROUP_V6",
    "Advert",
    "AuthKey",
    "AuthKeys",
    "ReplayGuard",
    "check_ttl",
    "checksum",
    "decode",
    "encode",
]

VERSION = 3
TYPE_ADVERTISEMENT = 1
IPPROTO_VRRP = 112
TTL = 255
VRRP_GROUP_V4 = ipaddress.IPv4Address("224.0.0.18")
VRRP_GROUP_V6 = ipaddress.IPv6Address("ff02::12")
HEADER_LENGTH = 8
MAX_INTERVAL_CS = 0x0FFF
MAX_ADDRESSES = 255
COUNTER_LENGTH = 8
MAC_LENGTH = 32
AUTH_TRAILER_LENGTH = 1 + COUNTER_LENGTH + MAC_LENGTH
MAX_COUNTER = 2**64 - 1

_HEADER = struct.Struct("!BBBBHH")


@attrs.frozen
class Advert:
    """One VRRPv3 ADVERTISEMENT. ``interval_cs`` is the Max Advertise Interval (centiseconds)."""

    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple[IPAddress, ...]


@attrs.frozen
class AuthKey:
    id: int  # 0-255, carried in the trailer
    secret: bytes = attrs.field(repr=False)


@attrs.frozen
class AuthKeys:
    """The key to sign with (``current``) and, during a rotation, an older one still accepted."""

    current: AuthKey
    previous: AuthKey | None = None

    def lookup(self, key_id: int) -> AuthKey | None:
        for key in (self.current, self.previous):
            if key is not None and key.id == key_id:
                return key
        return None


@attrs.define
class ReplayGuard:
    """The last authenticated counter accepted from each source address."""

    last: dict[IPAddress, int] = attrs.field(factory=dict)

    def check(self, src: IPAddress, counter: int) -> None:
        last = self.last.get(src)
        if last is not None and counter <= last:
            raise HaError(HaErrorReason.AUTH_REPLAYED, f"counter {counter} <= {last} from {src}")

    def accept(self, src: IPAddress, counter: int) -> None:
        self.last[src] = counter


def check_ttl(ttl: int) -> None:
    """RFC 5798 §7.1: an advertisement whose IP TTL (hop limit) is not 255 is discarded."""
    if ttl != TTL:
        raise HaError(HaErrorReason.BAD_TTL, f"TTL {ttl} != {TTL}")


def _pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    if isinstance(src, ipaddress.IPv4Address) and isinstance(dst, ipaddress.IPv4Address):
        return src.packed + dst.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    if isinstance(src, ipaddress.IPv6Address) and isinstance(dst, ipaddress.IPv6Address):
        return src.packed + dst.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)
    raise HaError(HaErrorReason.BAD_ADDRESS_FAMILY, f"source {src} and destination {dst}")


def checksum(message: bytes, src: IPAddress, dst: IPAddress) -> int:
    """The checksum of ``message`` (its checksum field must be zero) under the pseudo-header."""
    return internet_checksum(_pseudo_header(src, dst, len(message)) + message)


def _mac(key: AuthKey, message: bytes, counter: bytes) -> bytes:
    return hmac.new(key.secret, message + counter, hashlib.sha256).digest()


def encode(
    advert: Advert,
    src: IPAddress,
    dst: IPAddress,
    *,
    auth: AuthKeys | None = None,
    counter: int = 0,
) -> bytes:
    """The IP payload of ``advert`` sent from ``src`` to ``dst``; signed with ``auth.current``
    and ``counter`` when ``auth`` is given. Raises `HaError` for an unencodable advert."""
    if not 1 <= advert.vrid <= 255:
        raise HaError(HaErrorReason.BAD_VRID, f"VRID {advert.vrid}")
    if not 0 <= advert.priority <= 255:
        raise HaError(HaErrorReason.BAD_CONFIG, f"priority {advert.priority}")
    if not 1 <= advert.interval_cs <= MAX_INTERVAL_CS:
        raise HaError(HaErrorReason.BAD_INTERVAL, f"interval {advert.interval_cs} cs")
    if not 1 <= len(advert.addresses) <= MAX_ADDRESSES:
        raise HaError(HaErrorReason.BAD_ADDRESS_COUNT, f"{len(advert.addresses)} addresses")
    if any(a.version != src.version for a in advert.addresses):
        raise HaError(HaErrorReason.BAD_ADDRESS_FAMILY, "addresses of another family")
    body = b"".join(a.packed for a in advert.addresses)
    header = _HEADER.pack(
        (VERSION << 4) | TYPE_ADVERTISEMENT,
        advert.vrid,
        advert.priority,
        len(advert.addresses),
        advert.interval_cs,
        0,
    )
    cksum = checksum(header + body, src, dst)
    message = header[:6] + struct.pack("!H", cksum) + body
    if auth is None:
        return message
    if not 0 <= counter <= MAX_COUNTER:
        raise HaError(HaErrorReason.BAD_CONFIG, f"counter {counter}")
    counter_bytes = counter.to_bytes(COUNTER_LENGTH, "big")
    key = auth.current
    return message + bytes([key.id]) + counter_bytes + _mac(key, message, counter_bytes)


def decode(
    data: bytes,
    src: IPAddress,
    dst: IPAddress,
    *,
    auth: AuthKeys | None = None,
    replay: ReplayGuard | None = None,
) -> Advert:
    """The advertisement in the IP payload ``data`` received from ``src`` for ``dst``.

    With ``auth`` the trailer is required and verified; with ``replay`` too, its counter must
    exceed the last one accepted from ``src`` and is then recorded. Raises only `HaError`."""
    if src.version != dst.version:
        raise HaError(HaErrorReason.BAD_ADDRESS_FAMILY, f"source {src} and destination {dst}")
    if len(data) < HEADER_LENGTH:
        raise HaError(HaErrorReason.TRUNCATED, f"{len(data)} bytes")
    version_type, vrid, priority, count, interval_word, _ = _HEADER.unpack_from(data)
    if version_type >> 4 != VERSION:
        raise HaError(HaErrorReason.BAD_VERSION, f"version {version_type >> 4}")
    if version_type & 0x0F != TYPE_ADVERTISEMENT:
        raise HaError(HaErrorReason.BAD_TYPE, f"type {version_type & 0x0F}")
    if count == 0:
        raise HaError(HaErrorReason.BAD_ADDRESS_COUNT, "no addresses")
    interval_cs = interval_word & MAX_INTERVAL_CS
    if interval_cs == 0:
        raise HaError(HaErrorReason.BAD_INTERVAL, "zero advertisement interval")
    if vrid == 0:
        raise HaError(HaErrorReason.BAD_VRID, "VRID 0")
    size = 4 if src.version == 4 else 16
    length = HEADER_LENGTH + count * size
    if len(data) < length:
        raise HaError(HaErrorReason.TRUNCATED, f"{len(data)} bytes, {count} addresses")
    message, trailer = bytes(data[:length]), bytes(data[length:])
    if checksum(message, src, dst) != 0:
        raise HaError(HaErrorReason.BAD_CHECKSUM)
    if auth is None:
        if trailer:
            raise HaError(HaErrorReason.BAD_LENGTH, f"{len(trailer)} trailing bytes")
    else:
        _verify(message, trailer, src, auth, replay)
    addresses: tuple[IPAddress, ...]
    if size == 4:
        addresses = tuple(
            ipaddress.IPv4Address(message[i : i + 4]) for i in range(HEADER_LENGTH, length, 4)
        )
    else:
        addresses = tuple(
            ipaddress.IPv6Address(message[i : i + 16]) for i in range(HEADER_LENGTH, length, 16)
        )
    return Advert(vrid, priority, interval_cs, addresses)


def _verify(
    message: bytes, trailer: bytes, src: IPAddress, auth: AuthKeys, replay: ReplayGuard | None
) -> None:
    if not trailer:
        raise HaError(HaErrorReason.AUTH_MISSING)
    if len(trailer) < AUTH_TRAILER_LENGTH:
        raise HaError(HaErrorReason.AUTH_TRUNCATED, f"{len(trailer)} trailer bytes")
    if len(trailer) > AUTH_TRAILER_LENGTH:
        raise HaError(HaErrorReason.BAD_LENGTH, f"{len(trailer)} trailer bytes")
    key = auth.lookup(trailer[0])
    if key is None:
        raise HaError(HaErrorReason.AUTH_UNKNOWN_KEY, f"key id {trailer[0]}")
    counter_bytes = trailer[1 : 1 + COUNTER_LENGTH]
    if not hmac.compare_digest(_mac(key, message, counter_bytes), trailer[1 + COUNTER_LENGTH :]):
        raise HaError(HaErrorReason.AUTH_FORGED)
    counter = int.from_bytes(counter_bytes, "big")
    if replay is not None:
        replay.check(src, counter)
        replay.accept(src, counter)
