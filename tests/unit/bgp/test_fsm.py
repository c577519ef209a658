"""The FSM vocabulary, the session attributes and the timer helpers (all pure)."""

from __future__ import annotations

import random
from ipaddress import IPv4Address
from typing import Any

import pytest

from bgp.codec import GracefulRestartCapability, GracefulRestartFamily
from bgp.codec.header import MessageType
from bgp.errors import ErrorCode, FsmSubcode
from bgp.fsm import (
    CONNECTED_STATES,
    EXPECTED_MESSAGES,
    GracefulRestartConfig,
    PeerGracefulRestart,
    SessionConfig,
    State,
    error_for_notification,
    unexpected_message_error,
)
from bgp.timers import (
    IdleHoldBackoff,
    SendProgress,
    Timer,
    default_send_hold_time,
    jittered,
)
from bgp.types import AS_TRANS, IPV4_UNICAST, IPV6_UNICAST, Afi, Safi

from .session_harness import config_a


@pytest.mark.parametrize(
    ("state", "subcode"),
    [
        (State.OPENSENT, FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENSENT),
        (State.OPENCONFIRM, FsmSubcode.UNEXPECTED_MESSAGE_IN_OPENCONFIRM),
        (State.ESTABLISHED, FsmSubcode.UNEXPECTED_MESSAGE_IN_ESTABLISHED),
        (State.IDLE, FsmSubcode.UNSPECIFIED),
    ],
)
def test_unexpected_message_subcodes_follow_rfc_6608(state: State, subcode: FsmSubcode) -> None:
    error = unexpected_message_error(state, MessageType.UPDATE)
    assert (error.code, error.subcode, error.data) == (ErrorCode.FSM_ERROR, subcode, b"")
    assert "UPDATE" in error.reason


def test_expected_messages_per_state() -> None:
    assert set(EXPECTED_MESSAGES) == CONNECTED_STATES
    for state in CONNECTED_STATES:
        assert MessageType.NOTIFICATION in EXPECTED_MESSAGES[state]
    assert MessageType.OPEN in EXPECTED_MESSAGES[State.OPENSENT]
    assert MessageType.OPEN not in EXPECTED_MESSAGES[State.OPENCONFIRM]
    assert EXPECTED_MESSAGES[State.OPENCONFIRM] == {
        MessageType.KEEPALIVE,
        MessageType.NOTIFICATION,
    }
    assert MessageType.OPEN not in EXPECTED_MESSAGES[State.ESTABLISHED]


def test_error_for_notification_only_for_known_codes() -> None:
    error = error_for_notification(6, 2, b"\x00")
    assert error is not None and error.code == ErrorCode.CEASE
    assert error_for_notification(99, 0, b"") is None


def test_peer_graceful_restart_keeps_negotiated_families_only() -> None:
    capability = GracefulRestartCapability(
        restart_time=300,
        restart_state=True,
        notification=True,
        families=[
            GracefulRestartFamily(Afi.IPV4, Safi.UNICAST, True),
            GracefulRestartFamily(Afi.IPV6, Safi.UNICAST, False),
            GracefulRestartFamily(Afi.IPV4, Safi.MULTICAST, True),
        ],
    )
    info = PeerGracefulRestart.from_capability(capability, frozenset({IPV4_UNICAST}))
    assert info == PeerGracefulRestart(
        300, True, True, frozenset({IPV4_UNICAST}), frozenset({IPV4_UNICAST})
    )
    both = PeerGracefulRestart.from_capability(capability, frozenset({IPV4_UNICAST, IPV6_UNICAST}))
    assert both.families == {IPV4_UNICAST, IPV6_UNICAST}
    assert both.forwarding_preserved == {IPV4_UNICAST}


# --- session attributes ---------------------------------------------------------------------------


def test_config_defaults() -> None:
    config = config_a()
    assert config.hold_time == 90 and config.keepalive_s == 30
    assert config.connect_retry_s == 5
    assert config.families == {IPV4_UNICAST, IPV6_UNICAST}
    assert not config.passive
    assert (config.idle_hold_s, config.idle_hold_max_s) == (1.0, 60.0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"hold_time": 1},
        {"hold_time": 2},
        {"hold_time": 70000},
        {"local_asn": 0},
        {"local_asn": AS_TRANS},
        {"local_asn": 1 << 32},
        {"peer_asn": 0},
        {"connect_retry_s": 0},
        {"idle_hold_s": -1},
        {"send_hold_s": 0},
        {"families": []},
        {"families": [(Afi.IPV4, Safi.MULTICAST)]},
        {"local_router_id": IPv4Address("0.0.0.0")},
    ],
)
def test_config_rejects_bad_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        config_a(**overrides)


def test_graceful_restart_time_fits_12_bits() -> None:
    with pytest.raises(ValueError):
        GracefulRestartConfig(restart_time=4096)
    assert GracefulRestartConfig().restart_time == 120


def test_config_accepts_hold_time_zero_and_three() -> None:
    assert config_a(hold_time=0).keepalive_s == 0
    assert config_a(hold_time=3).hold_time == 3
    assert isinstance(config_a(families=[IPV4_UNICAST]), SessionConfig)


def test_local_open_uses_as_trans_for_a_four_octet_asn() -> None:
    local = config_a().local_open()
    assert local.my_as == AS_TRANS and local.asn == config_a().local_asn
    plain = config_a(local_asn=65100).local_open()
    assert plain.my_as == 65100


# --- timers -----------------------------------------------------------------------------------


def test_jitter_is_between_three_quarters_and_the_full_value() -> None:
    rng = random.Random(7)
    values = [jittered(rng, 30.0) for _ in range(5000)]
    assert all(22.5 <= v <= 30.0 for v in values)
    assert min(values) < 23.0 and max(values) > 29.5


def test_timer_start_stop_due() -> None:
    timer = Timer()
    assert not timer.running and not timer.due(1e9)
    timer.start(10.0, 5.0)
    assert timer.deadline == 15.0 and timer.running
    assert not timer.due(14.99) and timer.due(15.0)
    timer.stop()
    assert timer.deadline is None


def test_idle_hold_backoff_doubles_to_the_cap_and_resets() -> None:
    backoff = IdleHoldBackoff(1.0, 60.0, damp=True)
    assert [backoff.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next_delay() == 1
    flat = IdleHoldBackoff(5.0, 60.0, damp=False)
    assert [flat.next_delay() for _ in range(3)] == [5, 5, 5]


def test_send_progress_tracks_the_backlog() -> None:
    progress = SendProgress()
    assert progress.stuck_deadline(480) is None
    progress.queued(100, 10.0)
    progress.queued(50, 20.0)  # still stuck since 10
    assert progress.stuck_deadline(480) == 490.0
    progress.drained(0, 30.0)  # no progress
    assert progress.stuck_deadline(480) == 490.0
    progress.drained(60, 40.0)
    assert progress.backlog == 90 and progress.stuck_deadline(480) == 520.0
    progress.drained(1000, 50.0)
    assert progress.backlog == 0 and progress.stuck_deadline(480) is None
    progress.queued(10, 60.0)
    progress.restart(70.0)
    assert progress.stuck_deadline(10) == 80.0
    progress.reset()
    assert progress.stuck_deadline(10) is None


def test_default_send_hold_time() -> None:
    assert default_send_hold_time(90) == 480
    assert default_send_hold_time(300) == 600
