"""The pure rise/fall core: flapping sequences, start-up rule, bookkeeping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.health.state import Health, HealthState, ProbeResult

OK = ProbeResult.success(0.001)
FAIL = ProbeResult.failure("timeout", 1.0)


def run(state: HealthState, sequence: str, start: float = 0.0) -> list[HealthState]:
    """Feed ``sequence`` ("+" success, "-" failure), one result per second; all states."""
    states = [state]
    for i, mark in enumerate(sequence):
        states.append(states[-1].record(OK if mark == "+" else FAIL, start + i + 1))
    return states


def healths(state: HealthState, sequence: str) -> str:
    letters = {Health.UNKNOWN: "?", Health.UP: "U", Health.DOWN: "D"}
    return "".join(letters[s.health] for s in run(state, sequence)[1:])


def test_starts_unknown_and_counts_as_up() -> None:
    state = HealthState.initial(rise=2, fall=3, now=5.0)
    assert state.health is Health.UNKNOWN and state.up
    assert (state.successes, state.failures, state.last, state.since) == (0, 0, None, 5.0)


def test_first_success_confirms_up() -> None:
    assert healths(HealthState.initial(2, 3, 0), "+") == "U"


def test_unknown_goes_down_after_fall_failures_only() -> None:
    assert healths(HealthState.initial(2, 3, 0), "---") == "??D"
    assert healths(HealthState.initial(2, 1, 0), "-") == "D"


def test_fall_three_two_failures_keep_it_up_and_a_success_resets() -> None:
    assert healths(HealthState.initial(2, 3, 0), "+--+--+---") == "UUUUUUUUUD"


def test_rise_two_needs_consecutive_successes() -> None:
    assert healths(HealthState.initial(2, 3, 0), "---+-++") == "??DDDDU"


def test_rise_one_fall_one_follows_every_result() -> None:
    assert healths(HealthState.initial(1, 1, 0), "+-+-") == "UDUD"


def test_flapping_never_changes_state_with_thresholds_above_streaks() -> None:
    assert healths(HealthState.initial(3, 3, 0), "+" + "-+" * 10 + "--") == "U" * 21 + "UU"
    down = run(HealthState.initial(3, 3, 0), "---")[-1]
    assert healths(down, "+-++-++-") == "D" * 8


def test_bookkeeping_counts_last_result_and_since() -> None:
    states = run(HealthState.initial(2, 2, 0), "++--+")
    up, _, _, down, after = states[1], states[2], states[3], states[4], states[5]
    assert (up.health, up.since, up.successes) == (Health.UP, 1, 1)
    assert states[2].since == 1 and states[2].successes == 2
    assert states[3].failures == 1 and states[3].successes == 0 and states[3].since == 1
    assert (down.health, down.since, down.failures, down.last) == (Health.DOWN, 4, 2, FAIL)
    assert (after.health, after.since, after.successes, after.checked_at) == (Health.DOWN, 4, 1, 5)
    assert after.last is not None and after.last.latency == 0.001 and after.last.error is None


def test_retuned_keeps_verdict() -> None:
    down = run(HealthState.initial(2, 2, 0), "--+")[-1]
    assert down.health is Health.DOWN and down.successes == 1
    kept = down.retuned(rise=5, fall=1, keep_counts=True)
    assert (kept.health, kept.successes, kept.rise, kept.fall) == (Health.DOWN, 1, 5, 1)
    reset = down.retuned(rise=1, fall=1, keep_counts=False)
    assert (reset.health, reset.successes, reset.failures) == (Health.DOWN, 0, 0)
    assert reset.record(OK, 9).health is Health.UP


def test_thresholds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HealthState.initial(0, 1, 0)


@given(
    rise=st.integers(1, 5),
    fall=st.integers(1, 5),
    sequence=st.text(alphabet="+-", max_size=40),
)
def test_verdict_follows_streaks(rise: int, fall: int, sequence: str) -> None:
    """Down exactly when the last `fall` results failed, or it was down and has not yet had
    `rise` successes in a row; never down without `fall` failures in a row."""
    states = run(HealthState.initial(rise, fall, 0), sequence)
    for i, state in enumerate(states[1:], start=1):
        prefix = sequence[:i]
        trailing_fail = len(prefix) - len(prefix.rstrip("-"))
        trailing_ok = len(prefix) - len(prefix.rstrip("+"))
        assert (state.successes, state.failures) == (trailing_ok, trailing_fail)
        if trailing_fail >= fall:
            assert state.health is Health.DOWN
        elif trailing_ok >= rise:
            assert state.health is Health.UP
        elif "-" * fall not in prefix:
            assert state.up
        else:
            assert state.health is states[i - 1].health or state.health is Health.UP
