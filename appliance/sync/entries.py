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

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from bpf.identity import Identity
from bpf.layout import CT_DSR, CT_REPORTED, CtEntry, CtKey
from bpf.model import IpProto
from bpf.records import ENTRY_DTYPE, KEY_DTYPE, Records, field_bytes, of_pairs

__all__ = ["KEY", "VALUE", "Decoder", "Encoder", "EntryError", "decode", "encode"]

KEY = struct.Struct("!4s4sHHB")
VALUE = struct.Struct(
    "!12s4sHBBB6sI"
)  # nat tuple, endpoint address and port, state, flags, fin, mac, age
MAX_AGE_MS = 0xFFFFFFFF


class EntryError(ValueError):
    """An entry this node cannot take: ``reason`` is "malformed", "unknown-service" or
    "unknown-endpoint"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Encoder:
    """`encode` with one node's numbering prepared, for many entries at once (a snapshot
    encodes ~100,000): `records` works on the map's record arrays, vectorised."""

    def __init__(self, identity: Identity) -> None:
        slots = [
            ((svc_id, index), (int(address), port))
            for svc_id, endpoints in identity.endpoints.items()
            for index, (address, port) in endpoints.items()
        ]
        #: (service id, endpoint index) -> row of the name arrays
        self._rows = {slot: row for row, (slot, _) in enumerate(slots)}
        self._addresses = np.array([address for _, (address, _) in slots], np.uint32)
        self._ports = np.array([port for _, (_, port) in slots], np.uint16)

    def __call__(self, key: CtKey, entry: CtEntry, now_ns: int) -> tuple[bytes, bytes]:
        (wire,), _ = self.records(*of_pairs([(key, entry)]), now_ns)
        if wire is None:
            raise EntryError("unknown-endpoint", f"service {entry.svc_id} index {entry.ep_index}")
        return wire

    def records(
        self, keys: Records, entries: Records, now_ns: int
    ) -> tuple[list[tuple[bytes, bytes] | None], Counter[str]]:
        """The wire (key, value) of each forward key and entry (`bpf.records`), in their
        order; None for one whose endpoint this node cannot name (counted by reason)."""
        rows = _look_up(
            self._rows, zip(entries["svc_id"].tolist(), entries["ep_index"].tolist(), strict=True)
        )
        named = rows >= 0
        values = np.zeros(len(entries), _WIRE_VALUE)
        values["nat"] = field_bytes(entries, 0, _NAT_SIZE)
        values["ep_addr"][named] = self._addresses[rows[named]]
        values["ep_port"][named] = self._ports[rows[named]]
        values["state"] = entries["state"]
        values["flags"] = entries["flags"] & CT_DSR
        values["fin"] = entries["fin_seen"]
        values["mac"] = field_bytes(entries, CtEntry.ep_mac.offset, _MAC_SIZE)
        age_ms = (now_ns - entries["created_ns"].astype(np.int64)) // 1_000_000
        values["age_ms"] = np.minimum(np.maximum(age_ms, 0), MAX_AGE_MS)
        # src, dst, sport, dport stay in network order: the key's first bytes travel as they are
        wire_keys = field_bytes(keys, 0, KEY.size).tobytes()
        wire_values = values.tobytes()
        ok = named.tolist()
        out: list[tuple[bytes, bytes] | None] = [
            (
                wire_keys[i * KEY.size : (i + 1) * KEY.size],
                wire_values[i * VALUE.size : (i + 1) * VALUE.size],
            )
            if good
            else None
            for i, good in enumerate(ok)
        ]
        skipped: Counter[str] = Counter()
        if missing := ok.count(False):
            skipped["unknown-endpoint"] = missing
        return out, skipped


class Decoder:
    """`decode` with one node's numbering prepared, for many entries at once (a resync
    decodes ~100,000): `records` turns them into record arrays for the map, vectorised."""

    def __init__(self, identity: Identity) -> None:
        self._services = {
            (int(vip), port, int(proto)): svc_id
            for (vip, port, proto), svc_id in identity.ids.items()
        }
        self._endpoints = {
            (svc_id, int(address), port): index
            for svc_id, eps in identity.indexes.items()
            for (address, port), index in eps.items()
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
        names = zip(
            wire_keys["dst"].tolist(),
            wire_keys["dport"].tolist(),
            wire_keys["proto"].tolist(),
            strict=True,
        )
        return _look_up(self._services, names)

    def _endpoint_indexes(
        self, svc_ids: np.ndarray[Any, np.dtype[np.int64]], wire_values: Records
    ) -> np.ndarray[Any, np.dtype[np.int64]]:
        """This node's index of each value's endpoint in its service, -1 where it has none."""
        names = zip(
            svc_ids.tolist(),
            wire_values["ep_addr"].tolist(),
            wire_values["ep_port"].tolist(),
            strict=True,
        )
        return _look_up(self._endpoints, names)


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


def _look_up(table: dict[Any, int], names: Iterable[Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """``table[name]`` for each name, -1 where it has none (a dict lookup per entry is cheaper
    than sorting the batch, and has no fixed cost for the one-entry batches of capture)."""
    get = table.get
    return np.fromiter((get(name, -1) for name in names), np.int64)


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
