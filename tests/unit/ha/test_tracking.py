"""Tracked objects → (priority delta, fault)."""

from __future__ import annotations

import pytest

from appliance.config.model import Track, TrackType
from appliance.ha.tracking import Observation, evaluate, is_up

IF = Track(TrackType.INTERFACE, "eth1", weight=-20)
BGP = Track(TrackType.BGP_PEER, "192.0.2.254", weight=-30)
SVC = Track(TrackType.SERVICE, "web", weight=10)
CMD = Track(TrackType.COMMAND, "/bin/check", weight=None)


@pytest.mark.parametrize(
    ("track", "observed", "up"),
    [
        (IF, "up", True),
        (IF, "UP", True),
        (IF, "down", False),
        (IF, "lowerlayerdown", False),
        (IF, True, True),
        (BGP, "established", True),
        (BGP, "Established", True),
        (BGP, "active", False),
        (SVC, True, True),
        (SVC, False, False),
        (SVC, "up", False),
        (CMD, 0, True),
        (CMD, 1, False),
        (CMD, "0", False),
        (IF, None, False),
    ],
)
def test_is_up(track: Track, observed: Observation | None, up: bool) -> None:
    assert is_up(track, observed) is up


def test_all_up() -> None:
    obs: dict[tuple[TrackType, str], Observation] = {
        (TrackType.INTERFACE, "eth1"): "up",
        (TrackType.BGP_PEER, "192.0.2.254"): "established",
        (TrackType.SERVICE, "web"): True,
        (TrackType.COMMAND, "/bin/check"): 0,
    }
    result = evaluate([IF, BGP, SVC, CMD], obs)
    assert (result.delta, result.fault, result.down) == (0, False, ())


def test_weights_add_and_unweighted_faults() -> None:
    obs: dict[tuple[TrackType, str], Observation] = {
        (TrackType.INTERFACE, "eth1"): "down",
        (TrackType.BGP_PEER, "192.0.2.254"): "idle",
        (TrackType.SERVICE, "web"): False,
        (TrackType.COMMAND, "/bin/check"): 0,
    }
    result = evaluate([IF, BGP, SVC, CMD], obs)
    assert (result.delta, result.fault) == (-40, False)
    obs[(TrackType.COMMAND, "/bin/check")] = 2
    assert evaluate([IF, BGP, SVC, CMD], obs).fault


def test_missing_observation_counts_as_down() -> None:
    result = evaluate([IF, CMD], {})
    assert (result.delta, result.fault, result.down) == (-20, True, (IF, CMD))
