"""Conntrack sync's entry codec: a connection travels by name and is renumbered on arrival."""

from __future__ import annotations

import ipaddress

import attrs
import pytest

from appliance.sync.entries import KEY, VALUE, Decoder, Encoder, EntryError, decode, encode
from bpf.conntrack import CtTuple
from bpf.identity import Identity
from bpf.layout import CT_DSR, CT_REMOTE, CT_REPORTED, CtEntry, CtState, be16, be32
from bpf.model import IpProto
from bpf.records import of_pairs

IP = ipaddress.IPv4Address
VIP = IP("198.51.100.10")
WEB = (VIP, 80, IpProto.TCP)
EP1, EP2 = (IP("192.168.80.101"), 8080), (IP("192.168.80.102"), 8080)
SENDER = Identity.build({WEB: 3}, {3: {EP1: 0, EP2: 1}})
RECEIVER = Identity.build({(VIP, 443, IpProto.TCP): 1, WEB: 7}, {7: {EP2: 4, EP1: 9}})
NOW = 50_000_000_000


def _conn(ep_index: int = 1, flags: int = CT_REPORTED) -> tuple[CtTuple, CtEntry]:
    key = CtTuple(IP("203.0.113.10"), VIP, 40000, 80, 6)
    entry = CtEntry(
        nat_src=be32("192.168.80.240"),
        nat_dst=be32("192.168.80.102"),
        nat_sport=be16(20001),
        nat_dport=be16(8080),
        svc_id=3,
        ep_index=ep_index,
        state=int(CtState.ESTABLISHED),
        flags=flags,
        fin_seen=1,
        created_ns=NOW - 2_500_000_000,
        last_ns=NOW - 1,
        packets=9,
        bytes=900,
    )
    entry.ep_mac[:] = b"\x02\x00\x00\x00\x00\x02"
    return key, entry


def test_an_entry_is_renumbered_on_arrival() -> None:
    key, entry = _conn()
    wire_key, wire_value = encode(key.to_key(), entry, SENDER, NOW)
    assert (len(wire_key), len(wire_value)) == (KEY.size, VALUE.size)
    later = NOW + 7_000_000_000  # the receiver's clock is its own
    ct_key, got = decode(wire_key, wire_value, RECEIVER, later)
    assert CtTuple.from_key(ct_key) == key
    assert (got.svc_id, got.ep_index) == (7, 4)  # the receiver's numbers for web and ep2
    assert CtTuple.nat_of(ct_key, got) == CtTuple.nat_of(key.to_key(), entry)
    assert (got.state, got.fin_seen, bytes(got.ep_mac)) == (
        int(CtState.ESTABLISHED),
        1,
        b"\x02\x00\x00\x00\x00\x02",
    )
    assert got.flags == CT_REPORTED  # not remote yet (insert adds it), not a reply
    assert got.created_ns == later - 2_500_000_000 and got.last_ns == later
    assert (got.packets, got.bytes) == (0, 0)


def test_only_the_dsr_flag_travels() -> None:
    key, entry = _conn(flags=CT_DSR | CT_REMOTE)
    _, got = decode(*encode(key.to_key(), entry, SENDER, NOW), RECEIVER, NOW)
    assert got.flags == CT_DSR | CT_REPORTED


def test_unknown_names_are_reported() -> None:
    key, entry = _conn(ep_index=5)
    with pytest.raises(EntryError) as info:
        encode(key.to_key(), entry, SENDER, NOW)
    assert info.value.reason == "unknown-endpoint"
    key, entry = _conn()
    wire = encode(key.to_key(), entry, SENDER, NOW)
    for identity, reason in (
        (Identity.build({}, {}), "unknown-service"),
        (Identity.build({WEB: 7}, {7: {EP1: 0}}), "unknown-endpoint"),
    ):
        with pytest.raises(EntryError) as info:
            decode(*wire, identity, NOW)
        assert info.value.reason == reason
    with pytest.raises(EntryError) as info:
        decode(wire[0][:-1], wire[1], RECEIVER, NOW)
    assert info.value.reason == "malformed"
    bad_proto = wire[0][:-1] + bytes([99])
    with pytest.raises(EntryError) as info:
        decode(bad_proto, wire[1], RECEIVER, NOW)
    assert info.value.reason == "unknown-service"  # no service has protocol 99


def test_a_batch_decodes_in_order_and_counts_what_it_skips() -> None:
    """`Decoder.records` (the resync path) gives, for a mixed batch, exactly the entries one
    by one decoding gives, in order, and counts the others by reason."""
    wide = (VIP, 9000, IpProto.TCP)  # a port above 255 and a second service
    sender = Identity.build({WEB: 3, wide: 5}, {3: {EP1: 0, EP2: 1}, 5: {EP2: 0}})
    receiver = Identity.build({WEB: 7, wide: 300}, {7: {EP2: 4, EP1: 9}, 300: {EP2: 63}})
    decoder = Decoder(receiver)
    pairs, expected = [], []
    for sport in range(40000, 40012):
        key, entry = _conn(ep_index=sport % 2)
        key = attrs.evolve(key, sport=sport, dport=9000 if sport % 3 == 0 else 80)
        if key.dport == 9000:
            entry.svc_id, entry.ep_index = 5, 0
        wire = encode(key.to_key(), entry, sender, NOW)
        pairs.append(wire)
        expected.append(decode(*wire, receiver, NOW + 5))
    unknown_service = (pairs[0][0][:-1] + bytes([17]), pairs[0][1])
    unknown_endpoint = (pairs[1][0], pairs[1][1][:12] + bytes(4) + pairs[1][1][16:])
    malformed = (pairs[2][0], pairs[2][1][:-1])
    batch = [*pairs[:4], unknown_service, *pairs[4:8], unknown_endpoint, malformed, *pairs[8:]]
    keys, entries, skipped = decoder.records(batch, NOW + 5)
    assert skipped == {"unknown-service": 1, "unknown-endpoint": 1, "malformed": 1}
    assert keys.tobytes() == b"".join(bytes(key) for key, _ in expected)
    assert entries.tobytes() == b"".join(bytes(entry) for _, entry in expected)
    assert {int(i) for i in entries["svc_id"]} == {7, 300}
    empty_keys, empty_entries, none = decoder.records([], NOW)
    assert (len(empty_keys), len(empty_entries), none) == (0, 0, {})


def test_a_batch_encodes_in_order_with_none_for_what_cannot_be_named() -> None:
    """`Encoder.records` (the snapshot and capture path): each entry as `encode` gives it,
    None where the endpoint has no name here; ages never negative."""
    items = []
    for sport, ep_index in ((40000, 0), (40001, 5), (40002, 1)):
        key, entry = _conn(ep_index=ep_index)
        items.append((attrs.evolve(key, sport=sport).to_key(), entry))
    young_key, young = _conn()
    young.created_ns = NOW + 1  # created after "now" (another thread's clock read)
    items.append((attrs.evolve(young_key, sport=40003).to_key(), young))
    encoded, skipped = Encoder(SENDER).records(*of_pairs(items), NOW)
    assert skipped == {"unknown-endpoint": 1}
    assert encoded[1] is None
    for (key, entry), wire in zip(items[:1] + items[2:], encoded[:1] + encoded[2:], strict=True):
        assert wire == encode(key, entry, SENDER, NOW)
    assert encoded[3] is not None and VALUE.unpack(encoded[3][1])[-1] == 0
