"""A connection as conntrack sync carries it: node-independent key and value bytes (pure).

Service ids and endpoint indexes are each node's own, so an entry travels by name:

* key (13 bytes): the forward 5-tuple as the client sent it — client address, VIP, client
  port, VIP port, IP protocol (network order). The VIP, port and protocol name the service.
* value (31 bytes): the translation (source, destination, ports), the endpoint (address,
  port), the state, the DSR flag, the FIN bits, the endpoint's MAC (DSR) and the connection's
  age in milliseconds.

`encode` uses the sending node's `Identity` to name the endpoint; `decode` renumbers with the
receiving node's. A service or endpoint the receiver does not have is reported, not guessed.
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct

from bpf.identity import Identity
from bpf.layout import CT_DSR, CT_REPORTED, CtEntry, CtKey
from bpf.model import IpProto

__all__ = ["KEY", "VALUE", "Decoder", "Encoder", "EntryError", "decode", "encode"]

KEY = struct.Struct("!4s4sHHB")
VALUE = struct.Struct(
    "!12s4sHBBB6sI"
)  # nat tuple, endpoint address and port, state, flags, fin, mac, age
MAX_AGE_MS = 0xFFFFFFFF
#: `CtEntry` as raw bytes (native order, its C padding): the translation tuple, svc_id,
#: ep_index, state, flags, ep_mac, fin_seen, created_ns, last_ns, packets, bytes
_ENTRY = struct.Struct("=12sIHBB6sBx4xQQQQ")
_KEY_PAD = bytes(3)
assert _ENTRY.size == ctypes.sizeof(CtEntry)


class EntryError(ValueError):
    """An entry this node cannot take: ``reason`` is "malformed", "unknown-service" or
    "unknown-endpoint"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Encoder:
    """`encode` with one node's numbering prepared (a snapshot encodes ~100,000 entries)."""

    def __init__(self, identity: Identity) -> None:
        self._names = {
            (svc_id, index): (address.packed, port)
            for svc_id, endpoints in identity.endpoints.items()
            for index, (address, port) in endpoints.items()
        }

    def __call__(self, key: CtKey, entry: CtEntry, now_ns: int) -> tuple[bytes, bytes]:
        return self.raw(bytes(key), bytes(entry), now_ns)

    def raw(self, key: bytes, entry: bytes, now_ns: int) -> tuple[bytes, bytes]:
        """The same from a map key's and entry's raw bytes."""
        nat, svc_id, ep_index, state, flags, mac, fin, created, *_ = _ENTRY.unpack(entry)
        name = self._names.get((svc_id, ep_index))
        if name is None:
            raise EntryError("unknown-endpoint", f"service {svc_id} index {ep_index}")
        age_ms = min(max(0, now_ns - created) // 1_000_000, MAX_AGE_MS)
        value = VALUE.pack(nat, name[0], name[1], state, flags & CT_DSR, fin, mac, age_ms)
        return key[: KEY.size], value  # src, dst, sport, dport are in network order


class Decoder:
    """`decode` with one node's numbering prepared (a resync decodes ~100,000 entries)."""

    def __init__(self, identity: Identity) -> None:
        self._services = {
            (vip.packed, port, int(proto)): svc_id
            for (vip, port, proto), svc_id in identity.ids.items()
        }
        self._endpoints = {
            svc_id: {(address.packed, port): index for (address, port), index in eps.items()}
            for svc_id, eps in identity.indexes.items()
        }

    def __call__(self, key: bytes, value: bytes, now_ns: int) -> tuple[CtKey, CtEntry]:
        raw_key, raw_entry = self.raw(key, value, now_ns)
        return CtKey.from_buffer_copy(raw_key), CtEntry.from_buffer_copy(raw_entry)

    def raw(self, key: bytes, value: bytes, now_ns: int) -> tuple[bytes, bytes]:
        """The same as raw `CtKey` and `CtEntry` bytes (a resync applies ~100,000)."""
        if len(key) != KEY.size or len(value) != VALUE.size:
            raise EntryError("malformed", f"key {len(key)} bytes, value {len(value)} bytes")
        _, vip, _, vport, proto = KEY.unpack(key)
        svc_id = self._services.get((vip, vport, proto))
        if svc_id is None:
            raise EntryError("unknown-service", _service_text(vip, vport, proto))
        nat, ep_address, ep_port, state, flags, fin, mac, age_ms = VALUE.unpack(value)
        index = self._endpoints.get(svc_id, {}).get((ep_address, ep_port))
        if index is None:
            raise EntryError("unknown-endpoint", f"{ipaddress.IPv4Address(ep_address)}:{ep_port}")
        created = max(0, now_ns - age_ms * 1_000_000)
        raw = _ENTRY.pack(
            nat,
            svc_id,
            index,
            state,
            (flags & CT_DSR) | CT_REPORTED,
            mac,
            fin,
            created,
            now_ns,
            0,
            0,
        )
        return key + _KEY_PAD, raw


def encode(key: CtKey, entry: CtEntry, identity: Identity, now_ns: int) -> tuple[bytes, bytes]:
    """The wire form of a forward entry; `EntryError` when its endpoint is not known here
    (a connection of a service that was removed meanwhile)."""
    return Encoder(identity)(key, entry, now_ns)


def decode(key: bytes, value: bytes, identity: Identity, now_ns: int) -> tuple[CtKey, CtEntry]:
    """The map key and entry for a received connection, renumbered for this node. The entry
    is marked reported (its "established" event was sent where it began); `Conntrack.insert`
    flags it remote."""
    return Decoder(identity)(key, value, now_ns)


def _service_text(vip: bytes, port: int, proto: int) -> str:
    try:
        name = IpProto(proto).name.lower()
    except ValueError:
        name = str(proto)
    return f"{ipaddress.IPv4Address(vip)}:{port}/{name}"
