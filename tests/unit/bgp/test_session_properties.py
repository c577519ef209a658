"""Hypothesis properties of BgpSession input handling: chunking never matters, and no input
makes it raise — bad input always becomes a NOTIFICATION and SessionDown."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.codec import (
    Keepalive,
    Notification,
    RouteRefresh,
    encode,
    end_of_rib,
)
from bgp.errors import CeaseSubcode
from bgp.fsm import CloseRequested, SessionDown, State
from bgp.session import BgpSession
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Negotiated, Safi

from .session_harness import (
    ASN_A,
    ASN_B,
    VIP,
    VIP6,
    announce,
    announce6,
    config_a,
    notifications,
    of_type,
    peer_open,
    session,
)

WIRE = Negotiated(four_octet_as=True, extended_message=True, local_asn=ASN_B, peer_asn=ASN_A)
KEEPALIVE = encode(Keepalive(), Negotiated())
ESTABLISH = peer_open() + KEEPALIVE

AFTER_ESTABLISHED = [
    KEEPALIVE,
    encode(announce(VIP), WIRE),
    encode(announce6(VIP6), WIRE),
    encode(end_of_rib(IPV4_UNICAST), WIRE),
    encode(end_of_rib(IPV6_UNICAST), WIRE),
    encode(RouteRefresh(Afi.IPV4, Safi.UNICAST, 0), WIRE),
    encode(RouteRefresh(Afi.IPV6, Safi.UNICAST, 1), WIRE),
]
ENDINGS = [
    b"",
    encode(Notification.cease(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, "maintenance ✓"), WIRE),
    b"\x00" * 19,  # garbage after valid messages
]

streams = st.builds(
    lambda body, ending: ESTABLISH + b"".join(body) + ending,
    st.lists(st.sampled_from(AFTER_ESTABLISHED), max_size=12),
    st.sampled_from(ENDINGS),
)


def opensent() -> BgpSession:
    a = session(config_a())
    a.start(0.0)
    a.connection_made(0.0)
    a.events()
    a.data_to_send()
    return a


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    edges = [0, *points, len(data)]
    return [data[start:end] for start, end in itertools.pairwise(edges)]


@settings(max_examples=150, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(0, 1 << 16), max_size=40))
def test_chunking_of_a_message_stream_does_not_change_the_outcome(
    stream: bytes, cuts: list[int]
) -> None:
    whole = opensent()
    whole.receive_data(stream, 1.0)
    chunked = opensent()
    for piece in chunks(stream, cuts):
        chunked.receive_data(piece, 1.0)
    assert chunked.events() == whole.events()
    assert chunked.data_to_send() == whole.data_to_send()
    assert chunked.state is whole.state
    assert chunked.get_timer() == whole.get_timer()


def assert_reset_cleanly(a: BgpSession) -> None:
    assert a.state is State.IDLE
    events = a.events()
    assert len(of_type(events, SessionDown)) == 1
    assert events[-1] == CloseRequested()
    assert len(notifications(a.data_to_send())) == 1


@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from([b"", ESTABLISH]),
    garbage=st.binary(min_size=1, max_size=300).filter(lambda b: b[0] != 0xFF),
)
def test_random_garbage_becomes_a_notification(prefix: bytes, garbage: bytes) -> None:
    a = opensent()
    a.receive_data(prefix, 1.0)
    a.events()
    a.data_to_send()
    a.receive_data(garbage, 2.0)
    assert_reset_cleanly(a)


@st.composite
def framed_garbage(draw: st.DrawFn) -> bytes:
    """A well-framed message of a real type with a random body: reaches the decoders."""
    msg_type = draw(st.integers(1, 5))
    body = draw(st.binary(max_size=200))
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes([msg_type]) + body


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"", ESTABLISH]),
    frames=st.lists(framed_garbage(), min_size=1, max_size=4),
)
def test_framed_garbage_never_raises(prefix: bytes, frames: list[bytes]) -> None:
    a = opensent()
    a.receive_data(prefix + b"".join(frames), 1.0)
    if a.state is State.IDLE:
        events = a.events()
        assert len(of_type(events, SessionDown)) == 1
        assert events[-1] == CloseRequested()
        (down,) = of_type(events, SessionDown)
        # Ours went out for a protocol error; a received NOTIFICATION needs no reply.
        assert len(notifications(a.data_to_send())) == (1 if down.sent else 0)
