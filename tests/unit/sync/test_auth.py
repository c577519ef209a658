"""Every rejection reason from a crafted datagram: counted, reported, and nothing else changes.
Plus key rotation, wrong keys, replays and stale epochs end to end."""

from __future__ import annotations

import attrs
import pytest

from appliance.ha.wire import AuthKey, AuthKeys
from appliance.sync.core import PeerDown, Rejected, SyncCore
from appliance.sync.frames import (
    Entries,
    FrameType,
    Header,
    RejectReason,
    encode_body,
    encode_frame,
)

from .sim import KEYS, Net, addr

B_EPOCH = 2000


def pair(**kw: object) -> Net:
    net = Net(1, **kw)  # type: ignore[arg-type]
    net.add(1, 1000, [2])
    net.add(2, B_EPOCH, [1])
    net.run(1.0)
    return net


def forge(
    ftype: FrameType = FrameType.ENTRIES,
    body: object = Entries(((b"evil", b"x"),)),
    *,
    key: AuthKey = KEYS.current,
    **fields: int,
) -> bytes:
    """A frame as node 2 could send it to node 1 (seq 1 of its stream, a fresh counter)."""
    f = dict(key_id=key.id, node_id=2, epoch=B_EPOCH, counter=10**9, seq=1, ack=0, ack_epoch=0)
    f.update(fields)
    return encode_frame(Header(ftype, **f), encode_body(body), key)  # type: ignore[arg-type]


def observable(core: SyncCore, now: float) -> object:
    status = [attrs.evolve(s, rejected={}) for s in core.status(now)]
    tables = [dict(core.remote_table(s.peer)) for s in status]
    return status, tables, core.get_timer()


def crafted(net: Net) -> list[tuple[str, tuple[str, int], bytes]]:
    first = next(d for _, s, t, d in net.captured if s == addr(2) and t == addr(1))
    version2 = bytearray(forge())
    version2[2] = 2
    return [
        ("unknown-peer", ("10.9.9.9", 7946), forge()),
        ("malformed", addr(2), b"\x54\x53garbage"),
        ("malformed", addr(2), forge()[:-1]),
        ("version", addr(2), bytes(version2)),
        ("unknown-key", addr(2), forge(key=AuthKey(9, b"n" * 32))),
        ("bad-mac", addr(2), forge()[:-1] + bytes([forge()[-1] ^ 0xFF])),
        ("bad-mac", addr(2), forge(key=AuthKey(KEYS.current.id, b"wrong" * 8))),
        ("stale-epoch", addr(2), forge(epoch=B_EPOCH - 1)),
        ("replay", addr(2), first),
        ("node-id", addr(2), forge(node_id=5)),
        ("node-id", addr(2), forge(node_id=1, epoch=B_EPOCH + 1)),  # our own id
    ]


@pytest.mark.parametrize("index", range(11))
def test_each_rejection_counted_and_changes_nothing(index: int) -> None:
    net = pair()
    a = net[1]
    reason, source, data = crafted(net)[index]
    before = observable(a.core, net.now)
    assert a.core.datagrams_to_send() == []
    a.core.receive_datagram(source, data, net.now)
    assert a.core.datagrams_to_send() == []  # no ack, nothing
    assert a.core.next_event() == Rejected(source, reason)
    assert a.core.next_event() is None
    assert observable(a.core, net.now) == before
    if reason == "unknown-peer":
        assert a.core.rejected_unknown() == {"unknown-peer": 1}
        assert a.core.status(net.now)[0].rejected == {}
    else:
        assert a.core.status(net.now)[0].rejected == {reason: 1}
    assert set(RejectReason) >= {RejectReason(reason)}


def test_all_reasons_covered() -> None:
    net = pair()
    assert {r for r, _, _ in crafted(net)} == {str(r) for r in RejectReason}


def test_wrong_key_never_talks() -> None:
    net = Net(2)
    net.add(1, 1000, [2])
    net.add(2, 2000, [1], keys=AuthKeys(AuthKey(KEYS.current.id, b"other" * 8)))
    net[1].upsert(b"k", b"v")
    net.run(5.0)
    assert dict(net[2].core.remote_table(addr(1))) == {}
    for node in (net[1], net[2]):
        (status,) = node.core.status(net.now)
        assert status.state == "down"
        assert status.frames_received == 0
        assert status.rejected["bad-mac"] > 0


def test_key_rotation_previous_key_accepted() -> None:
    k1, k2 = KEYS.current, AuthKey(2, b"2" * 32)
    net = Net(3)
    a = net.add(1, 1000, [2], keys=AuthKeys(k2, previous=k1))  # rotated first
    b = net.add(2, 2000, [1], keys=AuthKeys(k1))  # not yet
    b.upsert(b"from-b", b"1")
    a.upsert(b"from-a", b"1")
    net.run(1.0)
    assert dict(a.core.remote_table(b.addr)) == {b"from-b": b"1"}  # k1 still accepted at a
    assert dict(b.core.remote_table(a.addr)) == {}  # b does not know k2 yet
    assert b.core.status(net.now)[0].rejected["unknown-key"] > 0
    b.core.set_keys(AuthKeys(k2, previous=k1))
    net.run(3.0)
    net.assert_converged()
    a.core.set_keys(AuthKeys(k2))  # rotation finished: k1 dropped
    a.upsert(b"late", b"2")
    net.run(4.0)
    net.assert_converged()


def test_captured_datagrams_replayed_are_all_rejected() -> None:
    net = pair(loss=0.0)
    a, b = net[1], net[2]
    for i in range(50):
        b.upsert(b"k%d" % i, b"v")
    net.run(2.0)
    net.assert_converged()
    b.delete(b"k1")
    net.run(3.0)
    before = dict(a.core.remote_table(b.addr))
    old = [d for at, s, t, d in net.captured if s == b.addr and t == a.addr and at < 2.9]
    for data in old:
        a.core.receive_datagram(b.addr, data, net.now)
    assert a.core.datagrams_to_send() == []
    events = []
    while (event := a.core.next_event()) is not None:
        events.append(event)
    assert events == [Rejected(b.addr, "replay")] * len(old)
    assert dict(a.core.remote_table(b.addr)) == before
    assert b"k1" not in before


def test_stale_epoch_after_restart() -> None:
    net = pair()
    a = net[1]
    net[2].upsert(b"old", b"1")
    net.run(2.0)
    old = [d for _, s, t, d in net.captured if s == addr(2) and t == addr(1)]
    net.add(2, B_EPOCH + 1, [1])  # restarted: a new process, an empty table
    net.run(4.0)
    net.assert_converged()
    assert dict(a.core.remote_table(addr(2))) == {}
    a.core.receive_datagram(addr(2), old[-1], net.now)
    assert a.core.next_event() == Rejected(addr(2), "stale-epoch")
    assert not any(isinstance(e, PeerDown) for e in a.events)
