"""The programmer's pure parts: id / index allocation, slots, port blocks, map values."""

from __future__ import annotations

import ipaddress
import itertools

from bpf.conntrack import counted, expired, reply_of
from bpf.layout import (
    CT_REPLY,
    CT_TIMEOUT_S,
    EP_ACTIVE,
    EP_DRAINING,
    PORT_FIRST,
    PORT_PARTITIONS,
    CtEntry,
    CtKey,
    CtState,
    Mode,
    Selection,
    be16,
    be32,
    from_be32,
)
from bpf.model import DpEndpoint, DpService, IpProto
from bpf.programmer import (
    assign_ids,
    assign_indexes,
    endpoint_indexes,
    endpoint_set,
    other_slot,
    port_block,
    select_table,
    service_value,
    slot_index,
)

IP = ipaddress.IPv4Address
VIP = IP("198.51.100.10")


def _key(port: int) -> tuple[IP, int, IpProto]:
    return (VIP, port, IpProto.TCP)


def _ep(last: int, **kw: object) -> DpEndpoint:
    return DpEndpoint(IP(f"192.168.80.{last}"), 8080, **kw)  # type: ignore[arg-type]


def test_ids_are_kept_and_new_ones_take_the_lowest_free() -> None:
    existing = {_key(80): 0, _key(81): 2}
    assert assign_ids(existing, [_key(81), _key(82), _key(83)]) == {
        _key(81): 2,
        _key(82): 0,  # 80 is gone: its id is free again
        _key(83): 1,
    }


def test_ids_run_out_at_the_limit() -> None:
    assert assign_ids({}, [_key(80), _key(81), _key(82)], limit=2) == {_key(80): 0, _key(81): 1}


def test_endpoint_indexes_are_stable_and_freed() -> None:
    a, b = (IP("192.168.80.1"), 8080), (IP("192.168.80.2"), 80)
    c, d = (IP("10.0.0.3"), 1), (IP("10.0.0.4"), 1)
    first = assign_indexes({}, [a, b, c])
    assert first == {a: 0, b: 1, c: 2}
    second = assign_indexes(first, [a, c, d])
    assert second == {a: 0, c: 2, d: 1}


def test_slots_alternate() -> None:
    assert other_slot(0) == 1 and other_slot(1) == 0
    assert slot_index(5, 1) == 11


def test_port_blocks_split_the_range_between_nodes() -> None:
    blocks = [port_block(n) for n in range(1, PORT_PARTITIONS + 1)]
    assert blocks[0][0] == PORT_FIRST
    for (base, count), (next_base, _) in itertools.pairwise(blocks):
        assert base + count == next_base
    last_base, last_count = blocks[-1]
    assert last_base + last_count <= 65536
    assert port_block(PORT_PARTITIONS + 1) == blocks[0]


def test_endpoint_set_keeps_indexes_and_flags() -> None:
    eps = [_ep(101), _ep(102, active=False), _ep(103, weight=5)]
    indexes = {(e.address, e.port): i for i, e in zip([0, 3, 1], eps, strict=True)}
    value = endpoint_set(eps, indexes)
    assert value.count == 4
    assert [value.eps[i].flags for i in range(4)] == [EP_ACTIVE, EP_ACTIVE, 0, EP_DRAINING]
    assert from_be32(value.eps[3].addr) == IP("192.168.80.102")
    assert value.eps[1].weight == 5
    assert endpoint_indexes(value) == indexes


def test_tables_leave_draining_endpoints_out() -> None:
    eps = [_ep(101), _ep(102, active=False), _ep(103)]
    indexes = {(e.address, e.port): i for i, e in enumerate(eps)}
    table = select_table(Selection.ROUNDROBIN, eps, indexes)
    assert list(table.entries[: table.size]) == [0, 2]
    weighted = select_table(Selection.WEIGHTED, [_ep(101, weight=2), _ep(103)], indexes)
    assert sorted(weighted.entries[: weighted.size]) == [0, 0, 2]
    maglev = select_table(Selection.MAGLEV, eps, indexes)
    assert set(maglev.entries[: maglev.size]) == {0, 2}


def test_service_values() -> None:
    fullnat = DpService(
        VIP, 80, IpProto.TCP, Mode.FULLNAT, Selection.HASH, (), snat_addr=IP("198.51.100.99")
    )
    value = service_value(fullnat, 7, 1, 2)
    assert (value.id, value.slot, value.mode, value.selection) == (7, 1, 2, Selection.HASH)
    assert from_be32(value.snat_addr) == IP("198.51.100.99")
    assert (value.port_base, value.port_count) == port_block(2)
    default = DpService(VIP, 80, IpProto.TCP, Mode.DEFAULT, Selection.ROUNDROBIN, ())
    plain = service_value(default, 0, 0, 1)
    assert (plain.snat_addr, plain.port_base, plain.port_count) == (0, 0, 0)


def test_reply_entry_is_the_forward_one_reversed() -> None:
    key = CtKey(src=be32("203.0.113.10"), dst=be32(VIP), sport=be16(40000), dport=be16(80), proto=6)
    entry = CtEntry(
        nat_src=be32("198.51.100.99"),
        nat_dst=be32("192.168.80.101"),
        nat_sport=be16(2000),
        nat_dport=be16(8080),
        state=CtState.ESTABLISHED,
    )
    reply_key, reply = reply_of(key, entry)
    assert from_be32(reply_key.src) == IP("192.168.80.101")
    assert from_be32(reply_key.dst) == IP("198.51.100.99")
    assert reply.flags & CT_REPLY
    back_key, _ = reply_of(reply_key, reply)
    assert bytes(back_key) == bytes(key)


def test_expiry_and_counting() -> None:
    entry = CtEntry(state=CtState.UDP, last_ns=1_000)
    limit = CT_TIMEOUT_S[CtState.UDP] * 1_000_000_000
    assert not expired(entry, 1_000 + limit)
    assert expired(entry, 1_001 + limit)
    assert not expired(CtEntry(state=CtState.UDP, last_ns=5_000), 1_000)  # future: fresh
    assert counted(entry)
    assert not counted(CtEntry(state=CtState.CLOSED))
    assert not counted(CtEntry(state=CtState.UDP, flags=CT_REPLY))
