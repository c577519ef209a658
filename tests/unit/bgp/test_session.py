"""BgpSession: establishment, timers, errors and message delivery, with a fake clock."""

from __future__ import annotations

import itertools
from ipaddress import IPv4Network
from typing import Any

import pytest

from bgp.codec import (
    GracefulRestartCapability,
    Keepalive,
    Notification,
    Open,
    RouteRefresh,
    Update,
    encode,
    end_of_rib,
)
from bgp.errors import (
    BgpError,
    CeaseSubcode,
    ErrorCode,
    FsmSubcode,
    OpenSubcode,
    UpdateSubcode,
)
from bgp.fsm import (
    CloseRequested,
    ConnectRequested,
    EndOfRibReceived,
    NotificationReceived,
    ProtocolWarning,
    RouteRefreshReceived,
    SessionDown,
    SessionEstablished,
    State,
    StateChanged,
    UpdateReceived,
)
from bgp.session import (
    SEND_HOLD_TIMER_EXPIRED,
    BgpSession,
    GracefulRestartConfig,
    SessionUsageError,
)
from bgp.timers import OPENSENT_HOLD_TIME
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Negotiated, Safi

from .session_harness import (
    ASN_A,
    ASN_B,
    ID_A,
    ID_B,
    VIP,
    VIP6,
    Link,
    announce,
    announce6,
    config_a,
    config_b,
    established_link,
    messages,
    notifications,
    of_type,
    peer_open,
    run_until,
    session,
    state_of,
)

KEEPALIVE = encode(Keepalive(), Negotiated())
WIRE = Negotiated(four_octet_as=True, extended_message=True, local_asn=ASN_B, peer_asn=ASN_A)


def a_in_opensent(now: float = 0.0, **overrides: Any) -> BgpSession:
    a = session(config_a(**overrides))
    a.start(now)
    a.connection_made(now)
    a.events()
    return a


def a_established(now: float = 0.0, **overrides: Any) -> BgpSession:
    a = a_in_opensent(now, **overrides)
    a.receive_data(peer_open() + KEEPALIVE, now)
    assert a.state is State.ESTABLISHED
    a.events()
    a.data_to_send()
    return a


def message(msg_type: int, body: bytes) -> bytes:
    return b"\xff" * 16 + (19 + len(body)).to_bytes(2, "big") + bytes([msg_type]) + body


def raw_update(attributes: bytes, nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    body = len(withdrawn).to_bytes(2, "big") + withdrawn + len(attributes).to_bytes(2, "big")
    return message(2, body + attributes + nlri)


ORIGIN_IGP = bytes([0x40, 1, 1, 0])
AS_PATH_B = bytes([0x40, 2, 6, 2, 1]) + ASN_B.to_bytes(4, "big")
NEXT_HOP_B = bytes([0x40, 3, 4]) + ID_B.packed
NLRI_VIP = bytes([24, 198, 51, 100])


# --- establishment -------------------------------------------------------------------------------


def test_two_sessions_reach_established_with_four_octet_asns_and_both_families() -> None:
    a = session(config_a())
    b = session(config_b(passive=True))
    a.start(0.0)
    b.start(0.0, passive=True)
    assert a.events() == [ConnectRequested(), StateChanged(State.IDLE, State.CONNECT)]
    assert b.events() == [StateChanged(State.IDLE, State.ACTIVE)]
    link = Link(a, b)
    link.connect(0.1)
    link.pump(0.1)

    for side, events, peer_asn in ((a, link.events_a, ASN_B), (b, link.events_b, ASN_A)):
        assert side.state is State.ESTABLISHED
        assert [e.new for e in of_type(events, StateChanged)] == [
            State.OPENSENT,
            State.OPENCONFIRM,
            State.ESTABLISHED,
        ]
        (up,) = of_type(events, SessionEstablished)
        assert up.negotiated.four_octet_as
        assert up.negotiated.extended_message
        assert up.negotiated.route_refresh and up.negotiated.enhanced_route_refresh
        assert up.negotiated.families == {IPV4_UNICAST, IPV6_UNICAST}
        assert up.negotiated.peer_asn == peer_asn
        assert up.negotiated.ebgp
        assert up.negotiated.hold_time == 90
        assert up.peer_open.asn == peer_asn
        assert up.graceful_restart is None
        assert side.negotiated == up.negotiated
        assert side.peer_open == up.peer_open
    assert a.initiated_locally is True and b.initiated_locally is False


def test_ibgp_and_the_smaller_hold_time_are_negotiated() -> None:
    link = established_link(
        config_a(peer_asn=ASN_A, hold_time=30), config_b(local_asn=ASN_A, hold_time=9)
    )
    negotiated = link.a.negotiated
    assert negotiated is not None
    assert not negotiated.ebgp
    assert negotiated.hold_time == 9
    assert link.b.negotiated is not None and link.b.negotiated.hold_time == 9


def test_any_peer_as_is_accepted_when_none_is_configured() -> None:
    link = established_link(config_a(peer_asn=None))
    assert link.a.peer_open is not None and link.a.peer_open.asn == ASN_B


def test_graceful_restart_capability_surfaces_in_session_established() -> None:
    a = session(config_a())
    b = session(
        config_b(
            passive=True,
            families=[IPV4_UNICAST, IPV6_UNICAST],
            graceful_restart=GracefulRestartConfig(restart_time=120, forwarding_preserved=True),
        )
    )
    a.start(0.0)
    b.start(0.0)
    link = Link(a, b)
    link.connect(0.0)
    link.pump(0.0)
    (up,) = of_type(link.events_a, SessionEstablished)
    assert up.graceful_restart is not None
    assert up.graceful_restart.restart_time == 120
    assert not up.graceful_restart.restarting
    assert up.graceful_restart.families == {IPV4_UNICAST, IPV6_UNICAST}
    assert up.graceful_restart.forwarding_preserved == {IPV4_UNICAST, IPV6_UNICAST}
    assert up.peer_open.capability(GracefulRestartCapability) is not None


def test_only_common_families_are_negotiated() -> None:
    link = established_link(b_config=config_b(families=[IPV4_UNICAST]))
    assert link.a.negotiated is not None
    assert link.a.negotiated.families == {IPV4_UNICAST}


# --- timers -------------------------------------------------------------------------------------


def test_keepalives_go_out_every_third_of_the_hold_time_with_jitter() -> None:
    link = established_link()
    a = link.a
    sent_at: list[float] = []
    now = 0.0
    while now < 3000.0:
        deadline = a.get_timer()
        assert deadline is not None
        now = deadline
        a.handle_timer(now)
        out = a.data_to_send()
        a.data_sent(len(out), now)
        if messages(out) == [Keepalive()]:
            sent_at.append(now)
        link.b.receive_data(out, now)
        a.receive_data(KEEPALIVE, now)  # B keeps A's hold timer fresh
        a.events()
    gaps = [later - earlier for earlier, later in itertools.pairwise([0.0, *sent_at])]
    assert len(gaps) > 100
    assert all(0.75 * 30 <= gap <= 30.0 for gap in gaps)
    assert max(gaps) - min(gaps) > 3  # a fresh jitter factor each time
    assert a.state is State.ESTABLISHED


def test_hold_timer_expiry_sends_notification_4_0_and_goes_idle() -> None:
    link = established_link()
    a, b = link.a, link.b
    now = run_until(a, 0.0, lambda s: s.state is State.IDLE, limit=100.0)
    assert now == pytest.approx(90.0)
    events = a.events()
    (down,) = of_type(events, SessionDown)
    assert down.error is not None and down.error.code == ErrorCode.HOLD_TIMER_EXPIRED
    assert down.sent and down.was_established
    assert CloseRequested() in events
    out = a.data_to_send()
    assert notifications(out) == [Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0)]
    b.receive_data(out, now)
    received = b.events()
    assert of_type(received, NotificationReceived)[0].code == ErrorCode.HOLD_TIMER_EXPIRED
    (b_down,) = of_type(received, SessionDown)
    assert not b_down.sent and b.state is State.IDLE


def test_hold_timer_in_opensent_is_the_large_value() -> None:
    a = a_in_opensent(10.0)
    assert a.get_timer() == 10.0 + OPENSENT_HOLD_TIME
    a.handle_timer(10.0 + OPENSENT_HOLD_TIME)
    assert a.state is State.IDLE
    assert notifications(a.data_to_send())[-1].code == ErrorCode.HOLD_TIMER_EXPIRED


def test_the_longest_keepalive_gap_is_measured() -> None:
    """``send_gap_max``: the longest wait between two KEEPALIVE/UPDATE sent (what a late
    event loop costs the peer's hold timer); late timer handling shows in it."""
    link = established_link()
    a = link.a
    assert a.send_gap_max == 0.0
    deadline = a.get_timer()
    assert deadline is not None and deadline <= 30.0
    a.handle_timer(deadline)  # on time: a jittered third of the hold time (90 s)
    assert 0.75 * 30 <= a.send_gap_max <= 30.0
    late = a.get_timer()
    assert late is not None
    a.handle_timer(late + 20.0)  # the loop ran the timer 20 s late
    assert a.send_gap_max == pytest.approx(late + 20.0 - deadline)
    assert a.state is State.ESTABLISHED


def test_hold_time_zero_means_no_keepalives_and_no_hold_timer() -> None:
    link = established_link(config_a(hold_time=0))
    assert link.a.negotiated is not None and link.a.negotiated.hold_time == 0
    assert link.a.get_timer() is None
    assert link.b.get_timer() is None


def test_connect_retry_timer_is_jittered_and_retries_the_connection() -> None:
    a = session(config_a(connect_retry_s=5.0))
    a.start(0.0)
    a.events()
    now, gaps = 0.0, []
    for _ in range(200):
        deadline = a.get_timer()
        assert deadline is not None
        gaps.append(deadline - now)
        now = deadline
        a.handle_timer(now)
        assert a.events() == [CloseRequested(), ConnectRequested()]
        assert a.state is State.CONNECT
    assert all(3.75 <= gap <= 5.0 for gap in gaps)
    assert len(set(gaps)) > 100


def test_failed_connection_waits_in_active_then_reconnects() -> None:
    a = session(config_a())
    a.start(0.0)
    a.connection_failed(1.0)
    assert a.state is State.ACTIVE
    deadline = a.get_timer()
    assert deadline is not None and 1.0 + 3.75 <= deadline <= 6.0
    a.events()
    a.handle_timer(deadline)
    assert a.events() == [ConnectRequested(), StateChanged(State.ACTIVE, State.CONNECT)]


def test_incoming_connection_in_active_is_accepted_as_the_peers() -> None:
    a = session(config_a())
    a.start(0.0)
    a.connection_failed(0.0)
    a.connection_made(1.0)
    assert a.state is State.OPENSENT
    assert a.initiated_locally is False


# --- passive mode -------------------------------------------------------------------------------


def test_passive_session_never_requests_a_connection() -> None:
    b = session(config_b(passive=True))
    b.start(0.0)
    assert b.state is State.ACTIVE
    assert b.get_timer() is None
    b.connection_made(1.0)
    b.connection_lost(2.0)  # in OpenSent: back to Active, no retry timer
    assert b.state is State.ACTIVE and b.get_timer() is None
    b.connection_made(3.0)
    b.receive_data(b"garbage!" * 3, 3.0)  # error: Idle, then AutomaticStart (passive)
    assert state_of(b) is State.IDLE
    b.handle_timer(4.0)
    assert state_of(b) is State.ACTIVE
    assert of_type(b.events(), ConnectRequested) == []


def test_passive_start_of_an_active_peer_only_listens_once() -> None:
    a = session(config_a())
    a.start(0.0, passive=True)
    assert a.state is State.ACTIVE and a.get_timer() is None
    assert of_type(a.events(), ConnectRequested) == []


# --- OPEN errors ---------------------------------------------------------------------------------


def test_open_from_the_wrong_peer_as_gets_bad_peer_as() -> None:
    a = a_in_opensent()
    a.data_to_send()
    a.receive_data(peer_open(asn=65001), 0.0)
    (sent,) = notifications(a.data_to_send())
    assert (sent.code, sent.subcode) == (ErrorCode.OPEN_MESSAGE_ERROR, OpenSubcode.BAD_PEER_AS)
    (down,) = of_type(a.events(), SessionDown)
    assert down.error is not None and down.error.subcode == OpenSubcode.BAD_PEER_AS
    assert down.sent and not down.was_established
    assert a.state is State.IDLE


@pytest.mark.parametrize("hold_time", [1, 2])
def test_unacceptable_hold_time(hold_time: int) -> None:
    a = a_in_opensent()
    a.data_to_send()
    a.receive_data(peer_open(hold_time=hold_time), 0.0)
    (sent,) = notifications(a.data_to_send())
    assert (sent.code, sent.subcode) == (
        ErrorCode.OPEN_MESSAGE_ERROR,
        OpenSubcode.UNACCEPTABLE_HOLD_TIME,
    )


def test_ibgp_peer_with_our_identifier_gets_bad_bgp_identifier() -> None:
    a = a_in_opensent(peer_asn=ASN_A)
    a.data_to_send()
    a.receive_data(peer_open(asn=ASN_A, identifier=ID_A), 0.0)
    (sent,) = notifications(a.data_to_send())
    assert sent.subcode == OpenSubcode.BAD_BGP_IDENTIFIER


def test_unsupported_version_is_a_header_error_path_too() -> None:
    a = a_in_opensent()
    a.data_to_send()
    bad = bytearray(peer_open())
    bad[19] = 3
    a.receive_data(bytes(bad), 0.0)
    (sent,) = notifications(a.data_to_send())
    assert sent.subcode == OpenSubcode.UNSUPPORTED_VERSION_NUMBER


# --- unexpected messages (RFC 6608) --------------------------------------------------------------


def test_keepalive_in_opensent_is_fsm_error_5_1() -> None:
    a = a_in_opensent()
    a.data_to_send()
    a.receive_data(KEEPALIVE, 0.0)
    (sent,) = notifications(a.data_to_send())
    assert (sent.code, sent.subcode) == (
        ErrorCode.FSM_ERROR,
        FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT,
    )
    assert a.state is State.IDLE


def test_update_in_openconfirm_is_fsm_error_5_2() -> None:
    a = a_in_opensent()
    a.receive_data(peer_open(), 0.0)
    assert a.state is State.OPENCONFIRM
    a.data_to_send()
    a.receive_data(encode(announce(VIP), WIRE), 0.0)
    (sent,) = notifications(a.data_to_send())
    assert sent.subcode == FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM


def test_open_in_established_is_fsm_error_5_3() -> None:
    a = a_established()
    a.receive_data(peer_open(), 5.0)
    (sent,) = notifications(a.data_to_send())
    assert sent.subcode == FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED
    (down,) = of_type(a.events(), SessionDown)
    assert down.was_established


# --- UPDATE handling ------------------------------------------------------------------------------


def test_updates_and_end_of_rib_are_delivered() -> None:
    link = established_link()
    link.a.send_update(announce(VIP), 1.0)
    link.a.send_update(announce6(VIP6), 1.0)
    link.a.send_update(end_of_rib(IPV4_UNICAST), 1.0)
    link.a.send_update(end_of_rib(IPV6_UNICAST), 1.0)
    link.pump(1.0)
    updates = [e.update for e in of_type(link.events_b, UpdateReceived)]
    assert [u.nlri for u in updates] == [(VIP,), ()]
    assert updates[1].mp_reach is not None and updates[1].mp_reach.nlri == (VIP6,)
    assert of_type(link.events_b, EndOfRibReceived) == [
        EndOfRibReceived(IPV4_UNICAST),
        EndOfRibReceived(IPV6_UNICAST),
    ]


def test_extended_message_update_after_open_in_the_same_chunk() -> None:
    a = a_in_opensent()
    big = Update(
        withdrawn=[IPv4Network((i << 8, 24)) for i in range(1500)],
    )
    stream = peer_open() + KEEPALIVE + encode(big, WIRE)
    assert len(encode(big, WIRE)) > 4096
    a.receive_data(stream, 0.0)
    assert a.state is State.ESTABLISHED
    (received,) = of_type(a.events(), UpdateReceived)
    assert len(received.update.withdrawn) == 1500


def test_malformed_update_resets_the_session_with_3_x() -> None:
    a = a_established()
    a.receive_data(raw_update(b"", withdrawn=b"\x20\x0a"), 2.0)  # /32 withdrawn, 1 octet only
    (sent,) = notifications(a.data_to_send())
    assert sent.code == ErrorCode.UPDATE_MESSAGE_ERROR
    events = a.events()
    (down,) = of_type(events, SessionDown)
    assert down.error is not None and down.error.code == ErrorCode.UPDATE_MESSAGE_ERROR
    assert down.sent and down.was_established
    assert events[-1] == CloseRequested()
    assert a.state is State.IDLE


def test_overrunning_attribute_length_is_malformed_attribute_list() -> None:
    a = a_established()
    body = (0).to_bytes(2, "big") + (200).to_bytes(2, "big") + ORIGIN_IGP
    a.receive_data(message(2, body), 2.0)
    (sent,) = notifications(a.data_to_send())
    assert (sent.code, sent.subcode) == (
        ErrorCode.UPDATE_MESSAGE_ERROR,
        UpdateSubcode.MALFORMED_ATTRIBUTE_LIST,
    )


def test_treat_as_withdraw_keeps_the_session_and_warns() -> None:
    a = a_established()
    bad_origin = bytes([0x40, 1, 1, 7])
    a.receive_data(raw_update(bad_origin + AS_PATH_B + NEXT_HOP_B, NLRI_VIP), 2.0)
    assert a.state is State.ESTABLISHED
    events = a.events()
    (warning,) = of_type(events, ProtocolWarning)
    assert warning.error.subcode == UpdateSubcode.INVALID_ORIGIN_ATTRIBUTE
    (received,) = of_type(events, UpdateReceived)
    assert received.update.treat_as_withdraw
    assert received.update.withdrawn_all() == [VIP]
    assert events.index(warning) < events.index(received)
    assert notifications(a.data_to_send()) == []


# --- route refresh -----------------------------------------------------------------------------


def test_route_refresh_round_trip_including_enhanced_subtypes() -> None:
    link = established_link()
    link.a.send_route_refresh(Afi.IPV4, Safi.UNICAST, 0, 1.0)
    link.a.send_route_refresh(Afi.IPV6, Safi.UNICAST, 1, 1.0)
    link.a.send_route_refresh(Afi.IPV6, Safi.UNICAST, 2, 1.0)
    link.pump(1.0)
    assert of_type(link.events_b, RouteRefreshReceived) == [
        RouteRefreshReceived(Afi.IPV4, Safi.UNICAST, 0),
        RouteRefreshReceived(Afi.IPV6, Safi.UNICAST, 1),
        RouteRefreshReceived(Afi.IPV6, Safi.UNICAST, 2),
    ]


def test_route_refresh_that_cannot_be_honoured_is_ignored_or_refused() -> None:
    link = established_link(b_config=config_b(passive=True, enhanced_route_refresh=False))
    with pytest.raises(SessionUsageError):
        link.a.send_route_refresh(Afi.IPV4, Safi.UNICAST, 1, 1.0)
    # A peer sending BoRR without the capability, or an unknown subtype: ignored.
    link.a.receive_data(encode(RouteRefresh(Afi.IPV4, Safi.UNICAST, 1), WIRE), 1.0)
    link.a.receive_data(encode(RouteRefresh(Afi.IPV4, Safi.UNICAST, 9), WIRE), 1.0)
    assert of_type(link.a.events(), RouteRefreshReceived) == []
    assert link.a.state is State.ESTABLISHED
    no_refresh = established_link(b_config=config_b(passive=True, route_refresh=False))
    with pytest.raises(SessionUsageError):
        no_refresh.a.send_route_refresh(Afi.IPV4, Safi.UNICAST, 0, 1.0)


# --- shutdown, stop, restart ---------------------------------------------------------------------


def test_shutdown_communication_arrives_intact() -> None:
    link = established_link()
    text = "maintenance: moving VIPs to node-2 — back in 10 min ✓"
    link.a.stop(5.0, text)
    assert link.a.state is State.IDLE
    assert link.a.get_timer() is None  # a manual stop does not restart
    link.pump(5.0)
    (received,) = of_type(link.events_b, NotificationReceived)
    assert (received.code, received.subcode) == (
        ErrorCode.CEASE,
        CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
    )
    assert received.communication == text
    (down,) = of_type(link.events_b, SessionDown)
    assert not down.sent and down.error is not None and down.error.code == ErrorCode.CEASE
    (a_down,) = of_type(link.events_a, SessionDown)
    assert a_down.sent and text in a_down.reason


def test_long_shutdown_communication_is_cut_to_255_octets_on_a_character() -> None:
    link = established_link()
    link.a.stop(5.0, "é" * 200)
    link.pump(5.0)
    (received,) = of_type(link.events_b, NotificationReceived)
    assert received.communication == "é" * 127


def test_stop_without_communication_and_stop_while_connecting() -> None:
    link = established_link()
    link.a.stop(1.0)
    (sent,) = notifications(link.a.data_to_send())
    assert sent == Notification(ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
    c = session(config_a())
    c.start(0.0)
    c.events()
    c.stop(1.0)
    assert c.events() == [StateChanged(State.CONNECT, State.IDLE), CloseRequested()]
    assert c.get_timer() is None
    c.connection_made(2.0)  # a late connection after the stop is refused
    assert c.events() == [CloseRequested()] and c.state is State.IDLE


def test_errors_restart_automatically_with_damped_idle_hold() -> None:
    a = session(config_a())
    a.start(0.0)
    now, waits = 0.0, list[float]()
    for _ in range(9):
        assert state_of(a) is State.CONNECT
        a.connection_made(now)
        a.receive_data(KEEPALIVE, now)  # FSM error in OpenSent
        assert state_of(a) is State.IDLE
        deadline = a.get_timer()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        a.handle_timer(now)  # AutomaticStart
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    a.stop(now)
    a.start(now)
    a.connection_made(now)
    a.receive_data(KEEPALIVE, now)
    assert a.get_timer() == now + 1  # a manual start resets the damping


def test_a_long_lived_session_resets_the_damping() -> None:
    a = session(config_a())
    a.start(0.0)
    for now in (0.0, 2.0):
        a.handle_timer(now)
        a.connection_made(now)
        a.receive_data(KEEPALIVE, now)
    assert a.get_timer() == 4.0  # second failure: 2 s
    a.handle_timer(4.0)
    a.connection_made(4.0)
    a.receive_data(peer_open() + KEEPALIVE, 4.0)
    assert a.state is State.ESTABLISHED
    a.receive_data(KEEPALIVE, 70.0)
    a.connection_lost(70.0)
    assert a.get_timer() == 71.0


def test_connection_lost_in_established_reports_and_restarts() -> None:
    a = a_established()
    a.connection_lost(3.0)
    events = a.events()
    (down,) = of_type(events, SessionDown)
    assert down.reason == "connection lost" and down.error is None and not down.sent
    assert down.was_established
    assert CloseRequested() not in events
    assert a.state is State.IDLE and a.negotiated is None and a.peer_open is None
    assert a.data_to_send() == b""
    a.handle_timer(4.0)
    assert state_of(a) is State.CONNECT


def test_connection_lost_in_opensent_goes_active_with_connect_retry() -> None:
    a = a_in_opensent()
    a.connection_lost(1.0)
    assert a.state is State.ACTIVE
    deadline = a.get_timer()
    assert deadline is not None and 1.0 + 3.75 <= deadline <= 6.0


def test_session_usage_errors() -> None:
    a = a_in_opensent()
    with pytest.raises(SessionUsageError):
        a.send_update(announce(VIP), 0.0)
    with pytest.raises(SessionUsageError):
        a.connection_made(0.0)
    with pytest.raises(SessionUsageError):
        a.send_route_refresh(Afi.IPV4, Safi.UNICAST, 0, 0.0)


def test_data_without_a_connection_is_ignored() -> None:
    a = session(config_a())
    a.receive_data(b"\x00" * 40, 0.0)
    assert a.events() == [] and a.data_to_send() == b""


def test_received_notification_with_unknown_code_still_ends_the_session() -> None:
    a = a_established()
    a.receive_data(encode(Notification(99, 1, b"x"), WIRE), 1.0)
    events = a.events()
    assert of_type(events, NotificationReceived) == [NotificationReceived(99, 1, b"x", None)]
    (down,) = of_type(events, SessionDown)
    assert down.error is None and not down.sent


# --- RFC 9687 send hold timer --------------------------------------------------------------------


def test_send_hold_timer_expires_when_nothing_drains() -> None:
    a = a_established(send_hold_s=None)
    now = 0.0
    while a.state is State.ESTABLISHED:
        deadline = a.get_timer()
        assert deadline is not None
        now = deadline
        a.handle_timer(now)
        a.receive_data(KEEPALIVE, now)  # the peer is alive but reads nothing from us
    assert now == pytest.approx(480.0)  # max(8 min, 2 x 90 s)
    (down,) = of_type(a.events(), SessionDown)
    assert down.reason == "send hold timer expired" and down.sent
    assert notifications(a.data_to_send())[-1].code == SEND_HOLD_TIMER_EXPIRED


def test_send_hold_timer_restarts_on_every_drain() -> None:
    a = a_established(send_hold_s=100.0)
    a.send_update(announce(VIP), 1.0)
    now = 1.0
    for _ in range(10):  # slow but steady progress: one octet every 60 s
        now += 60.0
        a.receive_data(KEEPALIVE, now)
        a.handle_timer(now)
        a.data_sent(1, now)
        assert state_of(a) is State.ESTABLISHED
    stalled_since = now
    while state_of(a) is State.ESTABLISHED:
        deadline = a.get_timer()
        assert deadline is not None
        now = deadline
        a.receive_data(KEEPALIVE, now)
        a.handle_timer(now)
    assert now == pytest.approx(stalled_since + 100.0)
    assert of_type(a.events(), SessionDown)[-1].reason == "send hold timer expired"


def test_nothing_to_send_is_never_a_stall() -> None:
    link = established_link(config_a(send_hold_s=10.0))
    link.advance(0.0, 1000.0)  # keepalives flow and drain; no backlog ever waits 10 s
    assert link.a.state is State.ESTABLISHED and link.b.state is State.ESTABLISHED


# --- framing ------------------------------------------------------------------------------------


def peer_stream() -> bytes:
    parts = [
        peer_open(),
        KEEPALIVE,
        encode(announce(VIP), WIRE),
        encode(announce6(VIP6), WIRE),
        encode(end_of_rib(IPV4_UNICAST), WIRE),
        encode(RouteRefresh(Afi.IPV6, Safi.UNICAST, 0), WIRE),
        KEEPALIVE,
        encode(Notification.cease(CeaseSubcode.ADMINISTRATIVE_RESET, "bye"), WIRE),
    ]
    return b"".join(parts)


def test_data_arriving_byte_by_byte_frames_correctly() -> None:
    whole = a_in_opensent()
    whole.receive_data(peer_stream(), 0.0)
    expected = whole.events()
    trickle = a_in_opensent()
    for octet in peer_stream():
        trickle.receive_data(bytes([octet]), 0.0)
    assert trickle.events() == expected
    assert trickle.data_to_send() == whole.data_to_send()
    kinds = [type(e).__name__ for e in expected if not isinstance(e, StateChanged)]
    assert kinds == [
        "SessionEstablished",
        "UpdateReceived",
        "UpdateReceived",
        "EndOfRibReceived",
        "RouteRefreshReceived",
        "NotificationReceived",
        "SessionDown",
        "CloseRequested",
    ]
    assert of_type(expected, NotificationReceived)[0].communication == "bye"


def test_bad_marker_is_detected_before_a_whole_header_arrives() -> None:
    a = a_established()
    a.receive_data(b"\xff" * 5 + b"\x00", 1.0)
    (sent,) = notifications(a.data_to_send())
    assert (sent.code, sent.subcode) == (ErrorCode.MESSAGE_HEADER_ERROR, 1)


def test_messages_before_a_bad_one_are_still_delivered() -> None:
    a = a_established()
    a.receive_data(encode(announce(VIP), WIRE) + b"\x00" * 19, 1.0)
    events = a.events()
    assert len(of_type(events, UpdateReceived)) == 1
    assert len(of_type(events, SessionDown)) == 1


def test_local_open_offers_the_configured_capabilities() -> None:
    local = session(config_a(graceful_restart=GracefulRestartConfig(90, True, False))).local_open
    assert isinstance(local, Open)
    assert local.asn == ASN_A and local.hold_time == 90 and local.identifier == ID_A
    assert local.families() == {IPV4_UNICAST, IPV6_UNICAST}
    restart = local.capability(GracefulRestartCapability)
    assert restart is not None and restart.restart_time == 90 and restart.restart_state


def test_inputs_that_do_not_apply_to_the_state_are_harmless() -> None:
    a = session(config_a())
    a.start(0.0)
    assert a.next_event() == ConnectRequested()
    assert a.next_event() == StateChanged(State.IDLE, State.CONNECT)
    assert a.next_event() is None
    a.start(1.0)  # ManualStart outside Idle is ignored
    a.connection_lost(1.0)  # no connection yet: same as a failed attempt
    assert state_of(a) is State.ACTIVE
    a.connection_made(2.0)
    a.connection_failed(3.0)  # with a connection: same as losing it
    assert state_of(a) is State.ACTIVE
    assert len(of_type(a.events(), SessionDown)) == 1


def test_route_refresh_for_a_family_not_negotiated_is_refused() -> None:
    link = established_link(b_config=config_b(passive=True, families=[IPV4_UNICAST]))
    with pytest.raises(SessionUsageError):
        link.a.send_route_refresh(Afi.IPV6, Safi.UNICAST, 0, 1.0)


def test_notification_data_is_cut_to_fit_one_message() -> None:
    a = a_in_opensent()
    a.data_to_send()
    # No decoder produces such data today; the cut guards the 4096-octet limit regardless.
    a._notify_and_close(BgpError(ErrorCode.CEASE, 0, b"x" * 5000), 1.0)
    out = a.data_to_send()
    assert len(out) == 4096
    assert notifications(out)[0].data == b"x" * (4096 - 21)
