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

import ipaddress
import struct

from bpf.identity import Identity
from bpf.layout import CT_DSR, CT_REPORTED, CtEntry, CtKey
from bpf.model import IpProto

__all__ = ["KEY", "VALUE", "EntryError", "decode", "encode"]

KEY = struct.Struct("!4s4sHHB")
VALUE = struct.Struct(
    "!12s4sHBBB6sI"
)  # nat tuple, endpoint address and port, state, flags, fin, mac, age
MAX_AGE_MS = 0xFFFFFFFF
_ENTRY_REST = len(bytes(CtEntry())) - 12  # after the translation tuple


class EntryError(ValueError):
    """An entry this node cannot take: ``reason`` is "malformed", "unknown-service" or
    "unknown-endpoint"."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode(key: CtKey, entry: CtEntry, identity: Identity, now_ns: int) -> tuple[bytes, bytes]:
    """The wire form of a forward entry; `EntryError` when its endpoint is not known here
    (a connection of a service that was removed meanwhile)."""
    endpoint = identity.endpoint(int(entry.svc_id), int(entry.ep_index))
    if endpoint is None:
        raise EntryError("unknown-endpoint", f"service {entry.svc_id} index {entry.ep_index}")
    raw_key = bytes(key)[: KEY.size]  # src, dst, sport, dport are kept in network order
    address, port = endpoint
    age_ms = min(max(0, now_ns - int(entry.created_ns)) // 1_000_000, MAX_AGE_MS)
    value = VALUE.pack(
        bytes(entry)[:12],  # nat_src, nat_dst, nat_sport, nat_dport: network order
        address.packed,
        port,
        int(entry.state),
        int(entry.flags) & CT_DSR,
        int(entry.fin_seen),
        bytes(entry.ep_mac),
        age_ms,
    )
    return raw_key, value


def decode(key: bytes, value: bytes, identity: Identity, now_ns: int) -> tuple[CtKey, CtEntry]:
    """The map key and entry for a received connection, renumbered for this node. The entry
    is marked reported (its "established" event was sent where it began); `Conntrack.insert`
    flags it remote."""
    if len(key) != KEY.size or len(value) != VALUE.size:
        raise EntryError("malformed", f"key {len(key)} bytes, value {len(value)} bytes")
    _src, vip, _sport, vport, proto = KEY.unpack(key)
    nat, ep_address, ep_port, state, flags, fin, mac, age_ms = VALUE.unpack(value)
    try:
        service = (ipaddress.IPv4Address(vip), vport, IpProto(proto))
    except ValueError as exc:
        raise EntryError("malformed", str(exc)) from exc
    svc_id = identity.ids.get(service)
    if svc_id is None:
        raise EntryError("unknown-service", f"{service[0]}:{vport}/{service[2].name.lower()}")
    index = identity.index(svc_id, (ipaddress.IPv4Address(ep_address), ep_port))
    if index is None:
        raise EntryError("unknown-endpoint", f"{ipaddress.IPv4Address(ep_address)}:{ep_port}")
    ct_key = CtKey.from_buffer_copy(key + bytes(3))
    entry = CtEntry.from_buffer_copy(nat + bytes(_ENTRY_REST))
    entry.svc_id = svc_id
    entry.ep_index = index
    entry.state = state
    entry.flags = (flags & CT_DSR) | CT_REPORTED
    entry.fin_seen = fin
    entry.ep_mac[:] = mac
    entry.created_ns = max(0, now_ns - age_ms * 1_000_000)
    entry.last_ns = now_ns
    return ct_key, entry
