"""Tracked objects → (priority delta, fault), purely from observed states the shell supplies.

Observations are keyed by (track type, track name) and mean:

* interface: the operational state string (``"up"`` is up; ``"down"``, ``"lowerlayerdown"``
  ... are down) or a bool;
* BGP peer: the session state name (``"established"`` is up) or a bool;
* service: a bool, the service is healthy;
* command: the exit status (0 is up) or a bool.

A track without an observation counts as down (the shell observes before it starts the
instance). A down track with a weight adds that weight to the priority delta; a down track
without one puts the group in FAULT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from appliance.config.model import Track, TrackType

__all__ = ["Observation", "TrackResult", "evaluate", "is_up"]

Observation = bool | int | str
Observations = Mapping[tuple[TrackType, str], Observation]


@attrs.frozen
class TrackResult:
    delta: int = 0
    fault: bool = False
    down: tuple[Track, ...] = ()


def is_up(track: Track, observed: Observation | None) -> bool:
    if observed is None:
        return False
    if isinstance(observed, bool):
        return observed
    if track.type is TrackType.COMMAND:
        return isinstance(observed, int) and observed == 0
    if isinstance(observed, str):
        state = observed.strip().lower()
        if track.type is TrackType.INTERFACE:
            return state == "up"
        if track.type is TrackType.BGP_PEER:
            return state == "established"
    return False


def evaluate(tracks: Iterable[Track], observations: Observations) -> TrackResult:
    down = tuple(t for t in tracks if not is_up(t, observations.get((t.type, t.name))))
    return TrackResult(
        delta=sum(t.weight for t in down if t.weight is not None),
        fault=any(t.weight is None for t in down),
        down=down,
    )
