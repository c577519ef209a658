"""The building blocks: send and receive streams, sequence wrap-around, anti-replay window."""

from __future__ import annotations

import pytest

from appliance.sync.frames import (
    MAX_SEQ_WIRE,
    Entries,
    Frame,
    FrameType,
    Header,
    encode_upsert,
    seq_to_wire,
)
from appliance.sync.receivestream import ReceiveStream
from appliance.sync.replay import WINDOW, ReplayWindow
from appliance.sync.sendstream import SendStream


def stream(window: int = 4, cap: int = 100) -> SendStream:
    return SendStream(rto_s=0.05, rto_max_s=0.3, window=window, payload_cap=cap)


def frame(seq: int, tag: bytes = b"x") -> Frame:
    header = Header(FrameType.ENTRIES, 1, 2, 3, seq, seq_to_wire(seq), 0, 0)
    return Frame(header, Entries(((tag, tag),)))


def test_fill_respects_window_and_packs_ops() -> None:
    send = stream(window=2, cap=40)
    ops = [encode_upsert(b"k%d" % i, b"v" * 10) for i in range(10)]  # 17 bytes each
    for op in ops:
        send.queue.append((op, 1.0))
    frames = send.fill(2.0)
    assert [f.seq for f in frames] == [1, 2]
    assert [f.payload for f in frames] == [ops[0] + ops[1], ops[2] + ops[3]]
    assert send.in_flight == 2 and send.waiting == 6 and send.oldest() == 1.0
    assert send.fill(2.0) == []
    send.acknowledge(seq_to_wire(1))
    assert [f.seq for f in send.fill(2.0)] == [3]
    assert send.ops_sent == 6


def test_control_then_snapshot_then_queue_and_hold() -> None:
    send = stream(window=100, cap=60)
    send.queue.append((encode_upsert(b"q", b"1"), 0.0))
    send.hold_queue = True
    assert send.fill(0.0) == []
    from appliance.sync.sendstream import SnapshotPush

    send.snapshot = SnapshotPush(7, [(b"a", b"1"), (b"b", b"2")], 0.0)
    send.hold_queue = False
    send.control.append((FrameType.RESYNC_REQUEST, b"", 0.0))
    types = [f.type for f in send.fill(0.0)]
    assert types == [
        FrameType.RESYNC_REQUEST,
        FrameType.RESYNC_BEGIN,
        FrameType.ENTRIES,
        FrameType.RESYNC_END,
        FrameType.ENTRIES,
    ]
    assert send.resyncs_sent == 1 and send.snapshot is None


def test_retransmission_backoff_capped_and_acks() -> None:
    send = stream()
    send.queue.append((encode_upsert(b"k", b"v"), 0.0))
    (first,) = send.fill(0.0)
    assert send.next_due() == pytest.approx(0.05)
    assert send.due(0.04) == []
    times = []
    now = 0.05
    for _ in range(5):
        assert send.due(now) == [first]
        times.append(first.rto)
        now = send.next_due()
    assert times == [0.1, 0.2, 0.3, 0.3, 0.3]
    assert send.retransmits == 5
    send.rearm(now)
    assert first.rto == 0.05 and send.next_due() == now
    assert send.acknowledge(seq_to_wire(5)) == 5  # beyond what was sent: ignored
    assert send.in_flight == 1
    send.acknowledge(seq_to_wire(1))
    assert send.in_flight == 0 and send.next_due() == float("inf")


def test_selective_ack_frees_held_frames() -> None:
    send = stream(window=10)
    for i in range(6):
        send.queue.append((encode_upsert(b"k%d" % i, b"v" * 80), 0.0))
    assert len(send.fill(0.0)) == 6
    cum = send.acknowledge(seq_to_wire(1))
    send.selective_ack(cum, bytes([0b10100000]))  # seq 3 and 5 held by the peer
    assert sorted(send.unacked) == [2, 4, 6]
    assert send.in_flight == 5  # still counted until the cumulative ack passes them
    assert [f.seq for f in send.due(1.0)] == [2, 4, 6]


def test_receive_in_order_holds_and_duplicates() -> None:
    recv = ReceiveStream(window=4)
    assert recv.accept(frame(2)) == []
    assert recv.accept(frame(3)) == []
    assert recv.accept(frame(9)) == []  # beyond the window: dropped
    assert recv.sack(64) == bytes([0b11000000])
    delivered = recv.accept(frame(1))
    assert [f.header.counter for f in delivered] == [1, 2, 3]
    assert recv.accept(frame(2)) == [] and recv.accept(frame(1)) == []
    assert recv.ack_wire == 3 and recv.sack(64) == b""


def test_stream_across_the_wrap() -> None:
    start = MAX_SEQ_WIRE - 5
    send, recv = stream(window=4), ReceiveStream(window=4)
    send.next_seq = send.una = start
    recv.next_seq = start
    got: list[bytes] = []
    for i in range(12):
        send.queue.append((encode_upsert(b"%d" % i, b"v" * 80), 0.0))
    while send.queue or send.in_flight:
        for out in reversed(send.fill(0.0)):  # reordered on the way
            wire = seq_to_wire(out.seq)
            assert 1 <= wire <= MAX_SEQ_WIRE
            f = Frame(Header(FrameType.ENTRIES, 1, 2, 3, 0, wire, 0, 0), Entries(((b"", b""),)))
            for ready in recv.accept(f):
                got.append(b"%d" % ready.header.seq)
        send.acknowledge(recv.ack_wire)
    assert len(got) == 12
    assert recv.next_seq == start + 12 and send.una == start + 12
    assert b"1" in got  # wire seq 1 follows MAX_SEQ_WIRE


def test_replay_window() -> None:
    window = ReplayWindow()
    for counter in (5, 3, 7):
        assert window.fresh(counter)
        window.accept(counter)
    assert not window.fresh(5) and not window.fresh(7) and window.fresh(6)
    window.accept(7 + WINDOW)
    assert not window.fresh(7)  # WINDOW below the highest: too old
    assert window.fresh(8) and not window.fresh(3)
    window.accept(10**15)  # a big jump forgets the rest cheaply
    assert not window.fresh(10**15) and window.fresh(10**15 - 1)


def test_the_retransmission_timeout_follows_the_round_trip() -> None:
    """RFC 6298: a peer that acks after 0.2 s gets timeouts above 0.2 s (not the 0.05 s
    floor), a fast one brings them back down, and a retransmitted frame gives no sample."""
    send = SendStream(rto_s=0.05, rto_max_s=2.0, window=64, payload_cap=100)
    assert send.rto == 0.05
    now = 0.0
    for _ in range(3):  # a slow receiver: every frame acked 0.2 s after it was sent
        send.queue.append((encode_upsert(b"k", b"v"), now))
        (sent,) = send.fill(now)
        now += 0.2
        send.acknowledge(seq_to_wire(sent.seq), now)
    assert send.srtt is not None and abs(send.srtt - 0.2) < 1e-9
    assert send.rto >= 0.2
    send.queue.append((encode_upsert(b"k", b"v"), now))
    (slow,) = send.fill(now)
    assert send.due(now + 0.19) == []  # the old fixed 50 ms would have resent it long ago
    now += 0.19
    send.acknowledge(seq_to_wire(slow.seq), now)
    for _ in range(40):  # a fast receiver: 1 ms round trips
        send.queue.append((encode_upsert(b"k", b"v"), now))
        (sent,) = send.fill(now)
        now += 0.001
        send.acknowledge(seq_to_wire(sent.seq), now)
    assert send.rto == 0.05  # back at the floor
    srtt = send.srtt
    send.queue.append((encode_upsert(b"k", b"v"), now))
    (lost,) = send.fill(now)
    (again,) = send.due(now + 0.06)
    assert again is lost and lost.retried
    send.acknowledge(seq_to_wire(lost.seq), now + 5.0)  # ambiguous: no sample (Karn)
    assert send.srtt == srtt


def test_no_frame_is_resent_while_the_peer_keeps_acking() -> None:
    """A full window to a busy peer acking one frame every 30 ms (less than the 50 ms floor):
    the frames at the window's end have waited far longer than that, yet none is resent; once
    the acks stop, the frames still unacked are resent a timeout later."""
    op_size = len(encode_upsert(b"k10", b"v"))
    send = SendStream(rto_s=0.05, rto_max_s=2.0, window=16, payload_cap=op_size)  # 1 op a frame
    now = 0.0
    for i in range(10, 26):
        send.queue.append((encode_upsert(b"k%d" % i, b"v"), now))
    frames = send.fill(now)
    assert len(frames) == 16
    for frame in frames[:10]:
        now += 0.03
        assert send.due(now) == []
        send.acknowledge(seq_to_wire(frame.seq), now)
    assert send.retransmits == 0
    assert send.due(now + 0.04) == []
    assert send.due(now + send.rto - 0.001) == []
    resent = send.due(now + send.rto + 0.001)  # a timeout after the acks stopped
    assert [f.seq for f in resent] == [f.seq for f in frames[10:]]
    assert send.retransmits == 6
