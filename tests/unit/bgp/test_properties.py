"""Property tests: valid messages round-trip; no input makes the decoder raise anything but
`BgpError`."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bgp.codec import Message, Update, decode, encode, split_messages
from bgp.errors import BgpError, Handling
from bgp.types import Negotiated

from .samples import corpus
from .strategies import negotiated_sessions, sessions_and_messages
from .wire import MARKER, message

CORPUS = corpus()

FUZZ = settings(
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _encode(negotiated: Negotiated, msg: Message) -> bytes:
    try:
        return encode(msg, negotiated)
    except ValueError:  # too long for the session; not what these tests are about
        assume(False)
        raise


@FUZZ
@given(sessions_and_messages)
def test_valid_messages_round_trip(case: tuple[Negotiated, Message]) -> None:
    negotiated, msg = case
    wire = _encode(negotiated, msg)
    decoded = decode(wire, negotiated)
    assert decoded == msg
    assert encode(decoded, negotiated) == wire
    frames, rest = split_messages(wire + wire[:7], negotiated)
    assert frames == [wire] and rest == wire[:7]


def check_decoders(data: bytes, negotiated: Negotiated) -> None:
    """`decode` and `split_messages` either succeed or raise BgpError; what decodes re-encodes."""
    try:
        decoded = decode(data, negotiated)
    except BgpError as error:
        assert isinstance(error.data, bytes)
        str(error)
    else:
        if isinstance(decoded, Update):
            assert all(e.handling is not Handling.SESSION_RESET for e in decoded.errors)
            decoded.announced_all()
            decoded.withdrawn_all()
        # Decoded values are valid objects; only "too long" may stop re-encoding (e.g. when a
        # reconstructed AS4_PATH makes the message longer than the limit).
        with contextlib.suppress(ValueError):
            encode(decoded, negotiated)
    try:
        frames, _rest = split_messages(data, negotiated)
    except BgpError:
        return
    for frame in frames:
        with contextlib.suppress(BgpError):
            decode(frame, negotiated)


random_input = st.binary(max_size=120) | st.builds(
    message, st.integers(0, 6), st.binary(max_size=200)
)  # fully random, or a good header (any type) on a random body


@FUZZ
@given(negotiated_sessions, random_input)
def test_random_bytes_only_raise_bgp_error(negotiated: Negotiated, data: bytes) -> None:
    check_decoders(data, negotiated)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Negotiated, bytes]:
    negotiated, wire = draw(st.sampled_from(CORPUS))
    data = bytearray(wire)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 8))]
    if draw(st.booleans()) and len(data) >= 19:
        # Keep the header consistent so that the body parsers see the damage.
        data[:16] = MARKER
        data[16:18] = len(data).to_bytes(2, "big")
    return negotiated, bytes(data)


@FUZZ
@given(mutated())  # mutations of the sample corpus: every message type and attribute
def test_mutated_messages_only_raise_bgp_error(case: tuple[Negotiated, bytes]) -> None:
    negotiated, data = case
    check_decoders(data, negotiated)


@given(st.integers(0, 32), st.integers(0, 2**32 - 1))
def test_fast_ipv4_network_equals_the_constructor(bits: int, raw: int) -> None:
    from ipaddress import IPv4Network

    from bgp.codec.nlri import ipv4_network

    value = raw & ~((1 << (32 - bits)) - 1) & 0xFFFFFFFF
    fast, slow = ipv4_network((value, bits)), IPv4Network((value, bits))
    assert fast == slow and hash(fast) == hash(slow) and str(fast) == str(slow)
    assert fast.prefixlen == slow.prefixlen and fast.netmask == slow.netmask
    assert fast.broadcast_address == slow.broadcast_address
    assert fast.network_address.packed == slow.network_address.packed
