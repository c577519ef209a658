"""The sync frame codec: round trips, every decode rejection, and a fuzzed decoder."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.ha.wire import AuthKey, AuthKeys
from appliance.sync.frames import (
    HEADER,
    MAGIC,
    MAX_SEQ_WIRE,
    OVERHEAD,
    Ack,
    Body,
    Entries,
    FrameError,
    FrameType,
    Header,
    Hello,
    RejectReason,
    ResyncBegin,
    ResyncEnd,
    decode_frame,
    encode_body,
    encode_frame,
    seq_from_wire,
    seq_to_wire,
)

KEY = AuthKey(3, b"s" * 32)
KEYS = AuthKeys(KEY)


def header(ftype: FrameType, seq: int = 0, **fields: int) -> Header:
    base = dict(key_id=3, node_id=7, epoch=10**18, counter=42, seq=seq, ack=0, ack_epoch=0)
    base.update(fields)
    return Header(ftype, **base)


CASES: list[tuple[FrameType, int, Body]] = [
    (FrameType.HELLO, 0, Hello(7, 1, 0xDEADBEEF)),
    (FrameType.ENTRIES, 1, Entries(((b"k1", b"v1"), (b"k2", None), (b"", b""), (b"k3", b"x")))),
    (FrameType.RESYNC_REQUEST, 5, None),
    (FrameType.RESYNC_BEGIN, MAX_SEQ_WIRE, ResyncBegin(9)),
    (FrameType.RESYNC_END, 77, ResyncEnd(9, 123456)),
    (FrameType.KEEPALIVE, 0, None),
    (FrameType.ACK, 0, Ack(b"\x80\x01")),
    (FrameType.ACK, 0, Ack(b"")),
]


@pytest.mark.parametrize(("ftype", "seq", "body"), CASES)
def test_round_trip(ftype: FrameType, seq: int, body: Body) -> None:
    h = header(ftype, seq, ack=17, ack_epoch=99)
    data = encode_frame(h, encode_body(body), KEY)
    assert len(data) == OVERHEAD + len(encode_body(body))
    frame = decode_frame(data, KEYS)
    assert frame.header == h
    assert frame.body == body


def test_previous_key_accepted_and_unknown_key_rejected() -> None:
    old = AuthKey(2, b"o" * 32)
    data = encode_frame(header(FrameType.KEEPALIVE, key_id=2), b"", old)
    assert decode_frame(data, AuthKeys(KEY, previous=old)).header.key_id == 2
    with pytest.raises(FrameError) as err:
        decode_frame(data, KEYS)
    assert err.value.reason is RejectReason.UNKNOWN_KEY


def _sign(raw: bytes, key: AuthKey = KEY) -> bytes:
    return raw + hmac.digest(key.secret, raw, hashlib.sha256)


def _raw(ftype: int, payload: bytes, *, version: int = 1, magic: int = MAGIC, **kw: int) -> bytes:
    f = dict(key_id=3, node_id=7, epoch=5, counter=1, seq=0, ack=0, ack_epoch=0)
    f.update(kw)
    return (
        HEADER.pack(
            magic,
            version,
            ftype,
            f["key_id"],
            f["node_id"],
            f["epoch"],
            f["counter"],
            f["seq"],
            f["ack"],
            f["ack_epoch"],
            len(payload),
        )
        + payload
    )


GOOD = _sign(_raw(FrameType.KEEPALIVE, b""))

BAD: list[tuple[str, bytes, RejectReason]] = [
    ("empty", b"", RejectReason.MALFORMED),
    ("short", GOOD[:-1], RejectReason.MALFORMED),
    ("long", GOOD + b"\0", RejectReason.MALFORMED),
    ("magic", _sign(_raw(FrameType.KEEPALIVE, b"", magic=0x1234)), RejectReason.MALFORMED),
    ("version", _sign(_raw(FrameType.KEEPALIVE, b"", version=2)), RejectReason.VERSION),
    ("key id", _sign(_raw(FrameType.KEEPALIVE, b"", key_id=4)), RejectReason.UNKNOWN_KEY),
    ("mac", GOOD[:-1] + bytes([GOOD[-1] ^ 1]), RejectReason.BAD_MAC),
    ("other key", _sign(_raw(6, b""), AuthKey(3, b"x" * 32)), RejectReason.BAD_MAC),
    ("type", _sign(_raw(99, b"")), RejectReason.MALFORMED),
    ("node 0", _sign(_raw(FrameType.KEEPALIVE, b"", node_id=0)), RejectReason.MALFORMED),
    ("epoch 0", _sign(_raw(FrameType.KEEPALIVE, b"", epoch=0)), RejectReason.MALFORMED),
    ("seq on keepalive", _sign(_raw(FrameType.KEEPALIVE, b"", seq=1)), RejectReason.MALFORMED),
    ("no seq on entries", _sign(_raw(FrameType.ENTRIES, b"\2\0\0")), RejectReason.MALFORMED),
    ("ack no epoch", _sign(_raw(FrameType.ACK, b"", ack=1)), RejectReason.MALFORMED),
    ("empty entries", _sign(_raw(FrameType.ENTRIES, b"", seq=1)), RejectReason.MALFORMED),
    ("bad op", _sign(_raw(FrameType.ENTRIES, b"\3\0\0", seq=1)), RejectReason.MALFORMED),
    ("cut op", _sign(_raw(FrameType.ENTRIES, b"\1\0\2\0\1k", seq=1)), RejectReason.MALFORMED),
    ("hello size", _sign(_raw(FrameType.HELLO, b"\7\1")), RejectReason.MALFORMED),
    ("hello node", _sign(_raw(FrameType.HELLO, b"\x08\1\0\0\0\0")), RejectReason.MALFORMED),
    ("begin size", _sign(_raw(FrameType.RESYNC_BEGIN, b"\0", seq=1)), RejectReason.MALFORMED),
    ("end size", _sign(_raw(FrameType.RESYNC_END, b"\0" * 4, seq=1)), RejectReason.MALFORMED),
    ("keepalive body", _sign(_raw(FrameType.KEEPALIVE, b"x")), RejectReason.MALFORMED),
]


@pytest.mark.parametrize(("data", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_decode_rejections(data: bytes, reason: RejectReason) -> None:
    with pytest.raises(FrameError) as err:
        decode_frame(data, KEYS)
    assert err.value.reason is reason


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data, KEYS)


@settings(max_examples=500)
@given(
    ftype=st.integers(0, 255),
    payload=st.binary(max_size=120),
    fields=st.fixed_dictionaries(
        {
            "node_id": st.integers(0, 255),
            "epoch": st.integers(0, 2**64 - 1),
            "counter": st.integers(0, 2**64 - 1),
            "seq": st.integers(0, 2**32 - 1),
            "ack": st.integers(0, 2**32 - 1),
            "ack_epoch": st.integers(0, 2**64 - 1),
        }
    ),
)
def test_fuzz_authentic_frames(ftype: int, payload: bytes, fields: dict[str, int]) -> None:
    """Correctly signed garbage reaches the payload parser: it must fail only with FrameError,
    and what it accepts must encode back to the same bytes."""
    data = _sign(_raw(ftype, payload, **fields))
    try:
        frame = decode_frame(data, KEYS)
    except FrameError:
        return
    assert encode_frame(frame.header, encode_body(frame.body), KEY) == data


@given(st.integers(0, 2**70), st.integers(-(2**30), 2**30))
def test_seq_wire_unwraps_near_reference(seq: int, delta: int) -> None:
    reference = max(0, seq + delta)
    wire = seq_to_wire(seq)
    assert 1 <= wire <= MAX_SEQ_WIRE
    assert seq_from_wire(wire, reference) == seq


def test_seq_wire_skips_zero() -> None:
    assert seq_to_wire(MAX_SEQ_WIRE) == MAX_SEQ_WIRE
    assert seq_to_wire(MAX_SEQ_WIRE + 1) == 1
    assert seq_to_wire(0) == MAX_SEQ_WIRE
    assert seq_from_wire(1, MAX_SEQ_WIRE) == MAX_SEQ_WIRE + 1
