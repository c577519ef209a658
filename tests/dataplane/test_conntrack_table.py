"""Conntrack access on real maps: hand-made entries (stub program), events from the ring
buffer (a stub that reports every packet, run with BPF_PROG_TEST_RUN)."""

from __future__ import annotations

import ctypes
import ipaddress
import time
from pathlib import Path

import pytest

from bpf.conntrack import ConnEvent, Conntrack, CtFilter, CtTuple, EventType, reply_of
from bpf.layout import (
    CT_DSR,
    CT_REMOTE,
    CT_REPLY,
    CT_TIMEOUT_S,
    MAX_ENDPOINTS,
    CtEntry,
    CtState,
    be16,
    be32,
)
from bpf.loader import Dataplane
from bpf.testrun import prog_test_run
from tests.dataplane.support_loader import bpffs, loaded, node, stub_source

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "loaded", "node", "stub_source"]

IP = ipaddress.IPv4Address
CLIENT, VIP = IP("203.0.113.10"), IP("198.51.100.10")
SNAT, ENDPOINT = IP("198.51.100.10"), IP("192.168.80.101")
SVC_ID, EP_INDEX = 3, 1
ACTIVE_KEY = ctypes.c_uint32(SVC_ID * MAX_ENDPOINTS + EP_INDEX)

EVENT_PROGRAM = """
#include <uapi/linux/pkt_cls.h>
int tlb_ingress(struct __sk_buff *skb) {
    struct ct_event ev = {};
    ev.type = EV_NEW;
    ev.key.src = 0x0a7100cb;  /* 203.0.113.10 in network order on little-endian */
    ev.key.sport = 0x3930;    /* 12345 */
    ev.key.proto = 6;
    ev.entry.svc_id = 3;
    ev.entry.ep_index = 1;
    ev.entry.state = CT_SYN_SENT;
    ev.entry.last_ns = bpf_ktime_get_ns();
    events.ringbuf_output(&ev, sizeof(ev), 0);
    return TC_ACT_OK;
}
"""


def _forward(sport: int = 40000, state: CtState = CtState.ESTABLISHED) -> tuple[CtTuple, CtEntry]:
    key = CtTuple(CLIENT, VIP, sport, 80, 6)
    entry = CtEntry(
        nat_src=be32(SNAT),
        nat_dst=be32(ENDPOINT),
        nat_sport=be16(20000 + sport % 1000),
        nat_dport=be16(8080),
        svc_id=SVC_ID,
        ep_index=EP_INDEX,
        state=state,
        packets=5,
        bytes=500,
    )
    return key, entry


def _active(conntrack: Conntrack) -> int:
    value = conntrack.maps.ep_active.lookup(ACTIVE_KEY)
    assert value is not None
    return int(value.value)


def test_insert_writes_both_directions_and_lists_the_connection(loaded: Dataplane) -> None:
    conntrack = Conntrack(loaded.maps)
    key, entry = _forward()
    conntrack.insert(key.to_key(), entry)
    forward = conntrack.lookup(key.to_key())
    assert forward is not None and forward.flags & CT_REMOTE and not forward.flags & CT_REPLY
    reply_key, _ = reply_of(key.to_key(), forward)
    assert CtTuple.from_key(reply_key) == CtTuple(ENDPOINT, SNAT, 8080, 20000, 6)
    reply = conntrack.lookup(reply_key)
    assert reply is not None and reply.flags & CT_REPLY
    assert CtTuple.nat_of(reply_key, reply) == CtTuple(VIP, CLIENT, 80, 40000, 6)
    assert conntrack.count() == 1
    (record,) = conntrack.entries()
    assert record.key == key and record.nat.dst == ENDPOINT and record.remote
    assert (record.svc_id, record.ep_index, record.state) == (SVC_ID, EP_INDEX, CtState.ESTABLISHED)
    assert _active(conntrack) == 1


def test_insert_again_does_not_count_twice(loaded: Dataplane) -> None:
    conntrack = Conntrack(loaded.maps)
    key, entry = _forward()
    conntrack.insert(key.to_key(), entry)
    conntrack.insert(key.to_key(), entry)
    assert _active(conntrack) == 1
    entry.state = CtState.CLOSED
    conntrack.insert(key.to_key(), entry)
    assert _active(conntrack) == 0


def test_insert_many_counts_each_connection_once_and_keeps_the_last_entry(
    loaded: Dataplane,
) -> None:
    """One batch (the bulk resync path) with a connection given twice, one moved to another
    endpoint, a closed one and a DSR one (no reply entry)."""
    conntrack = Conntrack(loaded.maps)
    other = ctypes.c_uint32(SVC_ID * MAX_ENDPOINTS + EP_INDEX + 1)
    loaded.maps.ep_active.update(other, ctypes.c_int64(0))
    twice, first = _forward(41000)
    _, again = _forward(41000)
    again.nat_dport = be16(9090)  # the later copy wins
    moved_key, moved = _forward(41001)
    conntrack.insert(moved_key.to_key(), moved)  # counted at EP_INDEX
    _, moved_on = _forward(41001)
    moved_on.ep_index = EP_INDEX + 1
    closed_key, closed = _forward(41002, CtState.CLOSED)
    dsr_key, dsr = _forward(41003)
    dsr.flags = CT_DSR
    assert _active(conntrack) == 1
    written, kept = conntrack.insert_many(
        [
            (twice.to_key(), first),
            (moved_key.to_key(), moved_on),
            (closed_key.to_key(), closed),
            (dsr_key.to_key(), dsr),
            (twice.to_key(), again),
        ]
    )
    assert (written, kept) == (4, 0)
    stored = conntrack.lookup(twice.to_key())
    assert stored is not None and stored.nat_dport == be16(9090)
    assert conntrack.lookup(reply_of(twice.to_key(), stored)[0]) is not None
    stored_dsr = conntrack.lookup(dsr_key.to_key())
    assert stored_dsr is not None and stored_dsr.flags & CT_REMOTE
    assert conntrack.lookup(reply_of(dsr_key.to_key(), stored_dsr)[0]) is None
    # twice + dsr at EP_INDEX (moved left it), moved at EP_INDEX + 1, closed nowhere
    assert _active(conntrack) == 2
    value = loaded.maps.ep_active.lookup(other)
    assert value is not None and value.value == 1
    assert conntrack.count() == 4


def test_entries_filter_and_page(loaded: Dataplane) -> None:
    conntrack = Conntrack(loaded.maps)
    for sport in (40001, 40002, 40003):
        key, entry = _forward(sport)
        conntrack.insert(key.to_key(), entry, now_ns=time.monotonic_ns() - sport)
    assert len(conntrack.entries(limit=2)) == 2
    assert len(conntrack.entries(limit=2, offset=2)) == 1
    assert conntrack.entries(filter=CtFilter(svc_id=SVC_ID + 1)) == []
    assert len(conntrack.entries(filter=CtFilter(client=CLIENT, endpoint=ENDPOINT))) == 3


def test_delete_removes_both_entries(loaded: Dataplane) -> None:
    conntrack = Conntrack(loaded.maps)
    key, entry = _forward()
    conntrack.insert(key.to_key(), entry)
    forward = conntrack.lookup(key.to_key())
    assert forward is not None
    assert conntrack.delete(key.to_key())
    assert conntrack.lookup(key.to_key()) is None
    assert conntrack.lookup(reply_of(key.to_key(), forward)[0]) is None
    assert not conntrack.delete(key.to_key())
    assert _active(conntrack) == 0


def test_collect_expired_uses_each_states_timeout(loaded: Dataplane) -> None:
    conntrack = Conntrack(loaded.maps)
    now = time.monotonic_ns()
    established, e_entry = _forward(40001, CtState.ESTABLISHED)
    syn, s_entry = _forward(40002, CtState.SYN_SENT)
    conntrack.insert(established.to_key(), e_entry, now_ns=now)
    conntrack.insert(syn.to_key(), s_entry, now_ns=now)
    assert _active(conntrack) == 2
    later = now + (CT_TIMEOUT_S[CtState.SYN_SENT] + 1) * 1_000_000_000
    assert conntrack.collect_expired(later) == 1
    assert conntrack.lookup(syn.to_key()) is None
    assert conntrack.lookup(established.to_key()) is not None
    assert _active(conntrack) == 1
    much_later = now + (CT_TIMEOUT_S[CtState.ESTABLISHED] + 1) * 1_000_000_000
    assert conntrack.collect_expired(much_later) == 1
    assert conntrack.count() == 0
    assert list(loaded.maps.conntrack.keys()) == []
    assert _active(conntrack) == 0


def test_events_are_decoded_from_the_ring_buffer(node: str, tmp_path: Path) -> None:
    source = tmp_path / "events.c"
    source.write_text(EVENT_PROGRAM)
    dataplane = Dataplane.load(node, 1, source=source)
    try:
        conntrack = Conntrack(dataplane.maps, dataplane)
        got: list[ConnEvent] = []
        conntrack.open_events(got.append)
        frame = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + bytes(40)
        prog_test_run(dataplane.program_fd, frame, repeat=2)
        for _ in range(20):  # bounded: the events are already in the buffer
            conntrack.poll_events(100)
            if len(got) >= 2:
                break
    finally:
        dataplane.close()
    assert len(got) == 2
    event = got[0]
    assert event.type is EventType.NEW
    record = event.record()
    assert (record.key.src, record.key.sport, record.key.proto) == (CLIENT, 12345, 6)
    assert (record.svc_id, record.ep_index, record.state) == (SVC_ID, EP_INDEX, CtState.SYN_SENT)
