"""SyncCore behaviour seen by its shell: frames it sends, events, status, API errors."""

from __future__ import annotations

import pytest

from appliance.sync.core import Apply, CoreConfig, PeerUp, SnapshotWanted, SyncCore
from appliance.sync.frames import Entries, FrameType, decode_frame

from .sim import KEYS, Net, addr


def config(n: int, **kw: object) -> CoreConfig:
    return CoreConfig(node_id=n, epoch=100 + n, keys=KEYS, **kw)  # type: ignore[arg-type]


def kinds(datagrams: list[tuple[tuple[str, int], bytes]]) -> list[FrameType]:
    return [decode_frame(d, KEYS).header.type for _, d in datagrams]


def test_hello_until_up_then_keepalive() -> None:
    a = SyncCore(config(1), [addr(2)], 10.0)
    b = SyncCore(config(2), [addr(1)], 10.0)
    assert a.get_timer() == pytest.approx(10.0)
    a.handle_timer(10.0)
    out = a.datagrams_to_send()
    assert kinds(out) == [FrameType.HELLO]
    assert a.get_timer() == pytest.approx(10.5)
    b.receive_datagram(addr(1), out[0][1], 10.01)
    assert b.next_event() == PeerUp(addr(1), 1)
    assert b.datagrams_to_send() == []  # HELLO is unreliable: no ack
    b.handle_timer(10.01)
    assert kinds(b.datagrams_to_send()) == [FrameType.KEEPALIVE]
    (status,) = b.status(10.5)
    assert status.state == "up" and status.node_id == 1 and status.epoch == 101
    assert status.last_heard_s == pytest.approx(0.49)
    assert b.get_timer() == pytest.approx(10.51)  # next keepalive (dead at 12.01)


def test_batches_acks_and_apply_order() -> None:
    a = SyncCore(config(1), [addr(2)], 0.0)
    b = SyncCore(config(2), [addr(1)], 0.0)
    for i in range(100):
        a.upsert(b"key-%03d" % i, b"value" * 4, 0.0)
    a.delete(b"key-000", 0.0)
    sent = a.datagrams_to_send()
    assert set(kinds(sent)) == {FrameType.ENTRIES}
    assert 3 <= len(sent) <= 5  # packed, not one frame per op
    for _, data in reversed(sent):  # arrive reordered
        b.receive_datagram(addr(1), data, 0.001)
    acks = b.datagrams_to_send()
    assert kinds(acks) == [FrameType.ACK]  # one pure ack for the whole batch
    ops: list[tuple[bytes, bytes | None]] = []
    while (event := b.next_event()) is not None:
        if isinstance(event, Apply):
            ops.extend(event.ops)
    assert ops == [(b"key-%03d" % i, b"value" * 4) for i in range(100)] + [(b"key-000", None)]
    assert len(b.remote_table(addr(1))) == 99
    (before,) = a.status(0.2)
    assert before.in_flight == len(sent) and before.lag_s == pytest.approx(0.2)
    a.receive_datagram(addr(2), acks[0][1], 0.002)
    (after,) = a.status(0.2)
    assert after.in_flight == 0 and after.lag_s == 0.0 and after.ops_sent == 101
    assert a.get_timer() > 0.05  # nothing to retransmit


def test_data_to_send_carries_the_ack() -> None:
    net = Net(0)
    a, b = net.add(1, 1, [2]), net.add(2, 2, [1])
    net.run(1.0)
    a.core.upsert(b"k", b"v", net.now)
    (frame,) = a.core.datagrams_to_send()
    b.core.receive_datagram(a.addr, frame[1], net.now)
    b.core.upsert(b"x", b"y", net.now)
    out = b.core.datagrams_to_send()
    assert kinds(out) == [FrameType.ENTRIES]  # no separate ACK: piggybacked
    header = decode_frame(out[0][1], KEYS).header
    assert header.ack == 1 and header.ack_epoch == 1


def test_frames_meant_for_an_earlier_process_are_ignored() -> None:
    net = Net(0)
    net.add(1, 1, [2])
    b = net.add(2, 2, [1])
    net.run(1.0)
    b.core.upsert(b"k", b"v", net.now)
    (frame,) = b.core.datagrams_to_send()
    a_new = SyncCore(CoreConfig(node_id=1, epoch=50, keys=KEYS), [addr(2)], net.now)
    a_new.receive_datagram(b.addr, frame[1], net.now)
    assert a_new.next_event() == PeerUp(b.addr, 2)  # b is alive...
    assert a_new.next_event() is None  # ...but its stream was for the old process
    assert dict(a_new.remote_table(b.addr)) == {}
    assert decode_frame(frame[1], KEYS).body == Entries(((b"k", b"v"),))


def test_api_errors() -> None:
    core = SyncCore(config(1, max_datagram=200), [addr(2)], 0.0)
    with pytest.raises(ValueError):
        core.upsert(b"k", b"v" * 200, 0.0)
    with pytest.raises(ValueError):
        core.provide_snapshot(addr(2), [(b"k", b"v" * 200)], 0.0)
    with pytest.raises(ValueError):
        core.provide_snapshot(addr(9), [], 0.0)
    with pytest.raises(ValueError):
        core.remote_table(addr(9))
    core.join(0.0)
    with pytest.raises(RuntimeError):
        core.join(0.0)
    for bad in (dict(node_id=0), dict(node_id=256), dict(epoch=0), dict(window=0)):
        with pytest.raises(ValueError):
            CoreConfig(**{"node_id": 1, "epoch": 1, "keys": KEYS, **bad})  # type: ignore[arg-type]


def test_request_snapshot_holds_ops_until_answered() -> None:
    net = Net(0)
    a, b = net.add(1, 1, [2]), net.add(2, 2, [1])
    net.run(1.0)
    a.ignore_snapshot_requests = 1  # the test answers by hand
    a.core.request_snapshot(b.addr, net.now)
    a.core.request_snapshot(b.addr, net.now)  # one outstanding at a time
    a.upsert(b"k", b"v")
    net.run(2.0)
    assert a.events.count(SnapshotWanted(b.addr)) == 1
    assert dict(b.core.remote_table(a.addr)) == {}  # held back: it may be newer than the read
    (status,) = a.core.status(net.now)
    assert status.queue == 1 and status.lag_s == pytest.approx(1.0)
    a.core.provide_snapshot(b.addr, [(b"old", b"1")], net.now)
    net.run(3.0)
    assert dict(b.core.remote_table(a.addr)) == {b"old": b"1", b"k": b"v"}


def test_overflow_while_awaiting_asks_again_from_the_timer() -> None:
    net = Net(0)
    a, b = net.add(1, 1, [2], queue_limit=3), net.add(2, 2, [1])
    net.run(1.0)
    core = a.core
    for i in range(5):  # overflow: a snapshot is wanted, the queue is dropped
        core.upsert(b"k%d" % i, b"v", net.now)
    assert core.next_event() == SnapshotWanted(b.addr)
    for i in range(5):  # ops are held while the snapshot is awaited: overflow again
        core.upsert(b"j%d" % i, b"v", net.now)
    assert core.next_event() is None
    core.provide_snapshot(b.addr, [], net.now)  # read before the second overflow
    assert core.next_event() is None  # not asked from inside provide_snapshot...
    assert core.get_timer() <= net.now
    core.handle_timer(net.now)
    assert core.next_event() == SnapshotWanted(b.addr)  # ...but from the timer
    (status,) = core.status(net.now)
    assert status.overflows == 2
