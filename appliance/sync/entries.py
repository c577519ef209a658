"""A connection as conntrack sync carries it: node-independent key and value bytes (pure).

Service ids and endpoint indexes are each node's own, so an entry travels by name:

* key (13 bytes): the forward 5-tuple as the client sent it — client address, VIP, client
  port, VIP port, IP protocol (network order). The VIP, port and protocol name the service.
* value (31 bytes): the translation (source, destination, ports), the endpoint (address,
  port), the state, the DSR flag, the FIN bits, the endpoint's MAC (DSR) and the connection's
  age in milliseconds.

`encode` uses the sending node's `Identity` to name the endpoint; `decode` renumbers with the
receiving node's. A service or endpoint the receiver does not have is reported, not guessed.
`Decoder.records` decodes a whole batch at once into the map's record arrays (`bpf.records`),
vectorised with numpy: a bulk resync brings ~100,000 entries, and one Python object per entry
made the receiver, not the network, the limit.
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from bpf.identity import Identity
from bpf.layout import CT_DSR, CT_REPORTED, CtEntry, CtKey
from bpf.model import IpProto
from bpf.records import ENTRY_DTYPE, KEY_DTYPE, Records, field_bytes

__all__ = ["KEY", "VALUE", "Decoder", "Encoder", "EntryError", "decode", "encode"]

KEY = struct.Struct("!4s4sHHB")
VALUE = struct.Struct(
    "!12s4sHBBB6sI"
)  # nat tuple, endpoint address and port, state, flags, fin, mac, age
MAX_AGE_MS = 0xFFFFFFFF
#: `CtEntry` as raw bytes (native order, its C padding): the translation tuple, svc_id,
#: ep_index, state, flags, ep_mac, fin_seen, created_ns, last_ns, packets, bytes
_ENTRY = struct.Struct("=12sIHBB6sBx4xQQQQ")
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
    """`decode` with one node's numbering prepared, for many entries at once (a resync
    decodes ~100,000): `records` turns them into record arrays for the map, vectorised."""

    def __init__(self, identity: Identity) -> None:
        self._services = {
            _service_code(int.from_bytes(vip.packed, "big"), port, int(proto)): svc_id
            for (vip, port, proto), svc_id in identity.ids.items()
        }
        self._endpoints = {
            svc_id: {
                _endpoint_code(int(address), port): index for (address, port), index in eps.items()
            }
            for svc_id, eps in identity.indexes.items()
        }

    def __call__(self, key: bytes, value: bytes, now_ns: int) -> tuple[CtKey, CtEntry]:
        keys, entries, skipped = self.records([(key, value)], now_ns)
        if skipped:
            reason = next(iter(skipped))
            raise EntryError(reason, _describe(reason, key, value))
        return CtKey.from_buffer_copy(keys.tobytes()), CtEntry.from_buffer_copy(entries.tobytes())

    def records(
        self, pairs: Sequence[tuple[bytes, bytes]], now_ns: int
    ) -> tuple[Records, Records, Counter[str]]:
        """The map's forward keys and entries (`bpf.records`) for wire (key, value) pairs, in
        their order, with the count of those skipped by reason (`EntryError` reasons)."""
        skipped: Counter[str] = Counter()
        well_formed = [(k, v) for k, v in pairs if len(k) == KEY.size and len(v) == VALUE.size]
        if len(well_formed) != len(pairs):
            skipped["malformed"] = len(pairs) - len(well_formed)
        wire_keys = np.frombuffer(b"".join(k for k, _ in well_formed), _WIRE_KEY)
        wire_values = np.frombuffer(b"".join(v for _, v in well_formed), _WIRE_VALUE)
        svc_ids = self._service_ids(wire_keys)
        indexes = self._endpoint_indexes(svc_ids, wire_values)
        known_service = svc_ids >= 0
        known = known_service & (indexes >= 0)
        if unknown := int(np.count_nonzero(~known_service)):
            skipped["unknown-service"] = unknown
        if unknown := int(np.count_nonzero(known_service & ~known)):
            skipped["unknown-endpoint"] = unknown
        wire_keys, wire_values = wire_keys[known], wire_values[known]
        keys = np.zeros(len(wire_keys), KEY_DTYPE)
        field_bytes(keys, 0, KEY.size)[:] = wire_keys.view(f"V{KEY.size}")
        entries = np.zeros(len(wire_keys), ENTRY_DTYPE)
        field_bytes(entries, 0, _NAT_SIZE)[:] = wire_values["nat"]
        entries["svc_id"] = svc_ids[known]
        entries["ep_index"] = indexes[known]
        entries["state"] = wire_values["state"]
        entries["flags"] = (wire_values["flags"] & CT_DSR) | CT_REPORTED
        field_bytes(entries, CtEntry.ep_mac.offset, _MAC_SIZE)[:] = wire_values["mac"]
        entries["fin_seen"] = wire_values["fin"]
        age_ns = wire_values["age_ms"].astype(np.int64) * 1_000_000
        entries["created_ns"] = np.maximum(now_ns - age_ns, 0)
        entries["last_ns"] = now_ns
        return keys, entries, skipped

    def _service_ids(self, wire_keys: Records) -> np.ndarray[Any, np.dtype[np.int64]]:
        """This node's service id of each key (VIP, port, protocol), -1 where it has none."""
        codes = _service_code(
            wire_keys["dst"].astype(np.uint64),
            wire_keys["dport"].astype(np.uint64),
            wire_keys["proto"].astype(np.uint64),
        )
        distinct, where = np.unique(codes, return_inverse=True)
        ids = np.array([self._services.get(int(code), -1) for code in distinct], np.int64)
        return ids[where] if len(ids) else np.zeros(0, np.int64)

    def _endpoint_indexes(
        self, svc_ids: np.ndarray[Any, np.dtype[np.int64]], wire_values: Records
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """This node's index of each value's endpoint in its service, -1 where it has none."""
        indexes = np.full(len(svc_ids), -1, np.int64)
        codes = _endpoint_code(
            wire_values["ep_addr"].astype(np.uint64), wire_values["ep_port"].astype(np.uint64)
        )
        for svc_id in np.unique(svc_ids[svc_ids >= 0]):
            endpoints = self._endpoints.get(int(svc_id), {})
            of_service = svc_ids == svc_id
            distinct, where = np.unique(codes[of_service], return_inverse=True)
            found = np.array([endpoints.get(int(code), -1) for code in distinct], np.int64)
            indexes[of_service] = found[where]
        return indexes


def encode(key: CtKey, entry: CtEntry, identity: Identity, now_ns: int) -> tuple[bytes, bytes]:
    """The wire form of a forward entry; `EntryError` when its endpoint is not known here
    (a connection of a service that was removed meanwhile)."""
    return Encoder(identity)(key, entry, now_ns)


def decode(key: bytes, value: bytes, identity: Identity, now_ns: int) -> tuple[CtKey, CtEntry]:
    """The map key and entry for a received connection, renumbered for this node. The entry
    is marked reported (its "established" event was sent where it began); `Conntrack.insert`
    flags it remote."""
    return Decoder(identity)(key, value, now_ns)


#: the wire key and value as packed records (`KEY`, `VALUE`), numbers as they are sent
_WIRE_KEY = np.dtype(
    [("src", "V4"), ("dst", ">u4"), ("sport", "V2"), ("dport", ">u2"), ("proto", "u1")]
)
_WIRE_VALUE = np.dtype(
    [
        ("nat", "V12"),
        ("ep_addr", ">u4"),
        ("ep_port", ">u2"),
        ("state", "u1"),
        ("flags", "u1"),
        ("fin", "u1"),
        ("mac", "V6"),
        ("age_ms", ">u4"),
    ]
)
_NAT_SIZE, _MAC_SIZE = 12, 6
assert (_WIRE_KEY.itemsize, _WIRE_VALUE.itemsize) == (KEY.size, VALUE.size)


def _service_code(vip: Any, port: Any, proto: Any) -> Any:
    """One number for (VIP, port, protocol): an int, or an array of them."""
    return (vip << 24) | (port << 8) | proto


def _endpoint_code(address: Any, port: Any) -> Any:
    """One number for an endpoint (address, port)."""
    return (address << 16) | port


def _describe(reason: str, key: bytes, value: bytes) -> str:
    """Which service or endpoint a skipped entry named."""
    if reason == "malformed":
        return f"key {len(key)} bytes, value {len(value)} bytes"
    if reason == "unknown-service":
        _, vip, _, vport, proto = KEY.unpack(key)
        return _service_text(vip, vport, proto)
    _, address, port, *_ = VALUE.unpack(value)
    return f"{ipaddress.IPv4Address(address)}:{port}"


def _service_text(vip: bytes, port: int, proto: int) -> str:
    try:
        name = IpProto(proto).name.lower()
    except ValueError:
        name = str(proto)
    return f"{ipaddress.IPv4Address(vip)}:{port}/{name}"
