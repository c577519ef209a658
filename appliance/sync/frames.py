"""The conntrack-sync wire format: one authenticated frame per UDP datagram.

Layout (all integers big-endian)::

    offset size  field
    0      2     magic 0x5453 ("TS")
    2      1     version (= 1)
    3      1     type (`FrameType`)
    4      1     key id (names the HMAC key, see `appliance.ha.wire.AuthKeys`)
    5      1     sender node id (1-255)
    6      8     sender epoch (strictly greater at every start of the sender)
    14     8     frame counter (strictly increasing per sender epoch; anti-replay)
    22     4     seq: reliable sequence number in the sender's stream to the receiver, 0 for an
                 unreliable frame (HELLO, KEEPALIVE, ACK)
    26     4     ack: cumulative ack of the receiver's stream to the sender
    30     8     ack epoch: the receiver's epoch the ack and the stream refer to, 0 = none known
    38     2     payload length
    40     n     payload (by type, below)
    40+n   32    HMAC-SHA256(key, bytes 0 .. 40+n)

Sequence numbers are unbounded integers inside the core and travel modulo 2**32 - 1 in the
range 1 .. 2**32 - 1 (`seq_to_wire` / `seq_from_wire`), so 0 stays free to mean "unreliable"
and a long-lived stream never runs out of numbers.

Payloads::

    HELLO            node id u8, protocol version u8, capabilities u32
    ENTRIES          ops, each: 0x01 key length u16, value length u16, key, value (upsert)
                                or 0x02 key length u16, key                         (delete)
    RESYNC_REQUEST   empty
    RESYNC_BEGIN     resync id u32
    RESYNC_END       resync id u32, entry count u32
    KEEPALIVE        empty
    ACK              selective-ack bitmap: bit i (most significant bit first) set = the
                     receiver holds seq ack + 2 + i out of order (may be empty)

`decode_frame` checks everything before it returns, so a frame it returns is authentic and
well formed; it raises only `FrameError`, whose reason is the `RejectReason` the core counts.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from typing import NamedTuple

import attrs

from appliance.ha.wire import AuthKey, AuthKeys

__all__ = [
    "HEADER",
    "MAC_LENGTH",
    "MAGIC",
    "MAX_SEQ_WIRE",
    "OVERHEAD",
    "RELIABLE_TYPES",
    "VERSION",
    "Ack",
    "Body",
    "Entries",
    "Frame",
    "FrameError",
    "FrameType",
    "Header",
    "Hello",
    "Op",
    "RejectReason",
    "ResyncBegin",
    "ResyncEnd",
    "decode_frame",
    "encode_body",
    "encode_delete",
    "encode_frame",
    "encode_upsert",
    "seq_from_wire",
    "seq_to_wire",
]

MAGIC = 0x5453
VERSION = 1
HEADER = struct.Struct("!HBBBBQQIIQH")
MAC_LENGTH = 32
OVERHEAD = HEADER.size + MAC_LENGTH
MAX_SEQ_WIRE = 2**32 - 1
MAX_U64 = 2**64 - 1

OP_UPSERT = 0x01
OP_DELETE = 0x02
_UPSERT_HEAD = struct.Struct("!BHH")
_DELETE_HEAD = struct.Struct("!BH")
_HELLO = struct.Struct("!BBI")
_BEGIN = struct.Struct("!I")
_END = struct.Struct("!II")

#: one replicated change: (key, value) or (key, None) for a delete
Op = tuple[bytes, bytes | None]


class FrameType(enum.IntEnum):
    HELLO = 1
    ENTRIES = 2
    RESYNC_REQUEST = 3
    RESYNC_BEGIN = 4
    RESYNC_END = 5
    KEEPALIVE = 6
    ACK = 7


#: types carried in the sequenced, acknowledged stream (the others have seq 0)
RELIABLE_TYPES = frozenset(
    {FrameType.ENTRIES, FrameType.RESYNC_REQUEST, FrameType.RESYNC_BEGIN, FrameType.RESYNC_END}
)


class RejectReason(enum.StrEnum):
    """Why a datagram was discarded: the value is the counter name in status and logs."""

    MALFORMED = "malformed"
    VERSION = "version"
    UNKNOWN_KEY = "unknown-key"
    BAD_MAC = "bad-mac"
    UNKNOWN_PEER = "unknown-peer"
    STALE_EPOCH = "stale-epoch"
    REPLAY = "replay"
    NODE_ID = "node-id"


class FrameError(Exception):
    """A datagram that is not an authentic, well-formed frame."""

    def __init__(self, reason: RejectReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


class Header(NamedTuple):
    type: FrameType
    key_id: int
    node_id: int
    epoch: int
    counter: int
    seq: int  # wire value
    ack: int  # wire value
    ack_epoch: int


@attrs.frozen
class Hello:
    node_id: int
    version: int
    capabilities: int


@attrs.frozen
class Entries:
    ops: tuple[Op, ...]


@attrs.frozen
class ResyncBegin:
    resync_id: int


@attrs.frozen
class ResyncEnd:
    resync_id: int
    count: int


@attrs.frozen
class Ack:
    sack: bytes = b""


#: a decoded payload; None for the empty ones (RESYNC_REQUEST, KEEPALIVE)
Body = Hello | Entries | ResyncBegin | ResyncEnd | Ack | None


class Frame(NamedTuple):
    header: Header
    body: Body


def seq_to_wire(seq: int) -> int:
    """The wire form (1 .. 2**32-1) of an unbounded sequence number (>= 0; 0 maps to the max)."""
    return (seq - 1) % MAX_SEQ_WIRE + 1


def seq_from_wire(wire: int, reference: int) -> int:
    """The unbounded sequence number nearest to ``reference`` whose wire form is ``wire``."""
    diff = (wire - seq_to_wire(reference)) % MAX_SEQ_WIRE
    if diff > MAX_SEQ_WIRE // 2:
        diff -= MAX_SEQ_WIRE
    return reference + diff


def encode_upsert(key: bytes, value: bytes) -> bytes:
    """One upsert op as it sits in an ENTRIES payload (the hot path: one pack, two joins)."""
    return _UPSERT_HEAD.pack(OP_UPSERT, len(key), len(value)) + key + value


def encode_delete(key: bytes) -> bytes:
    return _DELETE_HEAD.pack(OP_DELETE, len(key)) + key


def encode_body(body: Body) -> bytes:
    """The payload of ``body`` (ENTRIES here only for tests; the core joins pre-encoded ops)."""
    if body is None:
        return b""
    if isinstance(body, Hello):
        return _HELLO.pack(body.node_id, body.version, body.capabilities)
    if isinstance(body, Entries):
        return b"".join(encode_delete(k) if v is None else encode_upsert(k, v) for k, v in body.ops)
    if isinstance(body, ResyncBegin):
        return _BEGIN.pack(body.resync_id)
    if isinstance(body, ResyncEnd):
        return _END.pack(body.resync_id, body.count)
    return body.sack


def encode_frame(header: Header, payload: bytes, key: AuthKey) -> bytes:
    """The datagram for ``header`` (its key id must be ``key``'s) and ``payload``, signed."""
    data = HEADER.pack(
        MAGIC,
        VERSION,
        header.type,
        header.key_id,
        header.node_id,
        header.epoch,
        header.counter,
        header.seq,
        header.ack,
        header.ack_epoch,
        len(payload),
    )
    data += payload
    return data + hmac.digest(key.secret, data, hashlib.sha256)


def decode_frame(data: bytes, keys: AuthKeys) -> Frame:
    """The authentic frame in ``data``; raises `FrameError` (only) for anything else.

    Order of checks: length and magic (malformed), version, key id (unknown-key), MAC
    (bad-mac), then type, header fields and payload (malformed) — nothing unauthenticated
    is parsed beyond the fixed header."""
    size = len(data)
    if size < OVERHEAD:
        raise FrameError(RejectReason.MALFORMED, f"{size} bytes")
    (magic, version, ftype, key_id, node_id, epoch, counter, seq, ack, ack_epoch, length) = (
        HEADER.unpack_from(data)
    )
    if magic != MAGIC:
        raise FrameError(RejectReason.MALFORMED, f"magic {magic:#x}")
    if size != OVERHEAD + length:
        raise FrameError(RejectReason.MALFORMED, f"{size} bytes, payload length {length}")
    if version != VERSION:
        raise FrameError(RejectReason.VERSION, f"version {version}")
    key = keys.lookup(key_id)
    if key is None:
        raise FrameError(RejectReason.UNKNOWN_KEY, f"key id {key_id}")
    signed = size - MAC_LENGTH
    mac = hmac.digest(key.secret, data[:signed], hashlib.sha256)
    if not hmac.compare_digest(mac, data[signed:]):
        raise FrameError(RejectReason.BAD_MAC)
    try:
        frame_type = FrameType(ftype)
    except ValueError:
        raise FrameError(RejectReason.MALFORMED, f"type {ftype}") from None
    if node_id == 0 or epoch == 0:
        raise FrameError(RejectReason.MALFORMED, f"node id {node_id}, epoch {epoch}")
    if (seq != 0) != (frame_type in RELIABLE_TYPES):
        raise FrameError(RejectReason.MALFORMED, f"seq {seq} in {frame_type.name}")
    if (ack != 0) != (ack_epoch != 0):
        raise FrameError(RejectReason.MALFORMED, f"ack {ack} with ack epoch {ack_epoch}")
    header = Header(frame_type, key_id, node_id, epoch, counter, seq, ack, ack_epoch)
    payload = bytes(data[HEADER.size : signed])
    return Frame(header, _decode_body(frame_type, node_id, payload))


def _decode_body(frame_type: FrameType, node_id: int, payload: bytes) -> Body:
    if frame_type is FrameType.ENTRIES:
        return Entries(_decode_ops(payload))
    if frame_type is FrameType.ACK:
        return Ack(payload)
    if frame_type is FrameType.HELLO:
        if len(payload) != _HELLO.size:
            raise FrameError(RejectReason.MALFORMED, f"HELLO of {len(payload)} bytes")
        hello = Hello(*_HELLO.unpack(payload))
        if hello.node_id != node_id:
            raise FrameError(RejectReason.MALFORMED, f"HELLO node id {hello.node_id}")
        return hello
    if frame_type is FrameType.RESYNC_BEGIN:
        if len(payload) != _BEGIN.size:
            raise FrameError(RejectReason.MALFORMED, f"RESYNC_BEGIN of {len(payload)} bytes")
        return ResyncBegin(*_BEGIN.unpack(payload))
    if frame_type is FrameType.RESYNC_END:
        if len(payload) != _END.size:
            raise FrameError(RejectReason.MALFORMED, f"RESYNC_END of {len(payload)} bytes")
        return ResyncEnd(*_END.unpack(payload))
    if payload:
        raise FrameError(RejectReason.MALFORMED, f"{frame_type.name} with a payload")
    return None


def _decode_ops(payload: bytes) -> tuple[Op, ...]:
    ops: list[Op] = []
    append = ops.append
    pos, end = 0, len(payload)
    upsert_size, delete_size = _UPSERT_HEAD.size, _DELETE_HEAD.size
    unpack_upsert, unpack_delete = _UPSERT_HEAD.unpack_from, _DELETE_HEAD.unpack_from
    while pos < end:
        op = payload[pos]
        if op == OP_UPSERT and pos + upsert_size <= end:
            _, klen, vlen = unpack_upsert(payload, pos)
            kstart = pos + upsert_size
            vstart = kstart + klen
            pos = vstart + vlen
            if pos > end:
                break
            append((payload[kstart:vstart], payload[vstart:pos]))
        elif op == OP_DELETE and pos + delete_size <= end:
            _, klen = unpack_delete(payload, pos)
            kstart = pos + delete_size
            pos = kstart + klen
            if pos > end:
                break
            append((payload[kstart:pos], None))
        else:
            raise FrameError(RejectReason.MALFORMED, f"op {op} at {pos}")
    if pos != end or not ops:
        raise FrameError(RejectReason.MALFORMED, "truncated or empty ENTRIES")
    return tuple(ops)
