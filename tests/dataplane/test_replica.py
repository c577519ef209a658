"""The replica interface conntrack sync writes through (`LockedReplica`), on real maps: learnt
connections are written flagged remote, a node's own connection is never overwritten by a
peer's copy, deletes remove both directions, and stale keys (a peer lost them) are dropped
only when this node has not forwarded the connection since it learnt it."""

from __future__ import annotations

import ipaddress
import threading

import pytest
import trio

from appliance.dataplane_access import LockedReplica
from bpf.conntrack import ConnEvent, Conntrack, CtTuple, reply_of
from bpf.identity import Identity
from bpf.layout import CT_REMOTE, CtEntry, CtState, be16, be32
from bpf.loader import Dataplane
from tests.dataplane.support_loader import bpffs, loaded, node, stub_source

pytestmark = pytest.mark.lab

__all__ = ["bpffs", "loaded", "node", "stub_source"]

IP = ipaddress.IPv4Address


def _conn(sport: int, packets: int = 0) -> tuple[CtTuple, CtEntry]:
    key = CtTuple(IP("203.0.113.10"), IP("198.51.100.10"), sport, 80, 6)
    entry = CtEntry(
        nat_src=be32("192.168.80.240"),
        nat_dst=be32("192.168.80.101"),
        nat_sport=be16(sport),
        nat_dport=be16(8080),
        svc_id=2,
        ep_index=0,
        state=int(CtState.ESTABLISHED),
        packets=packets,
    )
    return key, entry


def _replica(loaded: Dataplane) -> tuple[LockedReplica, Conntrack]:
    conntrack = Conntrack(loaded.maps)

    def subscribe(_: int) -> trio.MemoryReceiveChannel[ConnEvent]:
        raise AssertionError("not used here")

    return LockedReplica(conntrack, threading.Lock(), Identity, subscribe), conntrack


def test_learnt_connections_are_written_remote_and_deleted_both_ways(loaded: Dataplane) -> None:
    replica, conntrack = _replica(loaded)
    key, entry = _conn(40001)
    report = replica.apply([(key.to_key(), entry)])
    assert (report.written, report.deleted, report.kept_local) == (1, 0, 0)
    stored = conntrack.lookup(key.to_key())
    assert stored is not None and stored.flags & CT_REMOTE
    reply_key, _ = reply_of(key.to_key(), stored)
    assert conntrack.lookup(reply_key) is not None
    forward = [(CtTuple.from_key(k), e.nat_sport) for k, e in replica.forward_entries()]
    assert forward == [(key, be16(40001))]
    report = replica.apply([(key.to_key(), None)])
    assert report.deleted == 1
    assert conntrack.lookup(key.to_key()) is None and conntrack.lookup(reply_key) is None


def test_a_peer_never_overwrites_a_connection_this_node_made(loaded: Dataplane) -> None:
    replica, conntrack = _replica(loaded)
    key, entry = _conn(40002)
    loaded.maps.conntrack.update(key.to_key(), entry)  # this node's own (not remote)
    theirs = CtEntry.from_buffer_copy(bytes(entry))
    theirs.nat_dst = be32("192.168.80.102")
    report = replica.apply([(key.to_key(), theirs)])
    assert (report.written, report.kept_local) == (0, 1)
    stored = conntrack.lookup(key.to_key())
    assert stored is not None and stored.nat_dst == be32("192.168.80.101")
    assert not stored.flags & CT_REMOTE


def test_stale_keys_are_dropped_unless_this_node_forwarded_them(loaded: Dataplane) -> None:
    replica, conntrack = _replica(loaded)
    idle, used, own = _conn(40003), _conn(40004), _conn(40005)
    replica.apply([(idle[0].to_key(), idle[1]), (used[0].to_key(), used[1])])
    # this node forwarded packets of `used` since it learnt it (it took the connection over)
    taken = conntrack.lookup(used[0].to_key())
    assert taken is not None
    taken.packets = 7
    loaded.maps.conntrack.update(used[0].to_key(), taken)
    loaded.maps.conntrack.update(own[0].to_key(), own[1])  # its own: never touched
    deleted, kept = replica.drop_stale(
        [idle[0].to_key(), used[0].to_key(), own[0].to_key(), _conn(40006)[0].to_key()]
    )
    assert (deleted, kept) == (1, 1)
    assert conntrack.lookup(idle[0].to_key()) is None
    assert conntrack.lookup(used[0].to_key()) is not None
    assert conntrack.lookup(own[0].to_key()) is not None


def test_a_bulk_apply_writes_every_connection_in_batches(loaded: Dataplane) -> None:
    """A resync's worth of connections (more than one update batch) and the raw walk of the
    table that answers a peer's resync."""
    replica, conntrack = _replica(loaded)
    conns = [_conn(1024 + i) for i in range(5000)]
    report = replica.apply([(key.to_key(), entry) for key, entry in conns])
    assert (report.written, report.kept_local) == (5000, 0)
    assert conntrack.count() == 5000
    assert len(list(loaded.maps.conntrack.batch_raw())) == 10_000  # with the reply entries
    keys, entries = replica.forward_records()
    raw = dict(zip(map(bytes, keys), map(bytes, entries), strict=True))
    assert len(raw) == 5000
    key, entry = conns[1234]
    stored = CtEntry.from_buffer_copy(raw[bytes(key.to_key())])
    assert stored.nat_sport == entry.nat_sport and stored.flags & CT_REMOTE
    # a second apply of the same connections replaces them: nothing counts twice
    replica.apply([(key.to_key(), entry) for key, entry in conns[:10]])
    assert conntrack.count() == 5000
