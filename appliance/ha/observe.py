"""What the tracked objects of the HA groups look like now, gathered for `tracking.evaluate`.

* interface: the oper state from the kernel (`linkstate.oper_states`, read by the caller);
* BGP peer: the session state the speaker publishes under ``bgp/neighbor/<address>`` (a peer
  the speaker does not know, or a speaker that is not running, is down);
* service: healthy when one of its endpoints is (`intent.endpoints_up` on the published
  endpoint health); a service missing from the running config is down;
* command: the last exit status of its `CommandCheck` (down until it has run).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from appliance.config.model import Config, Track, TrackType
from appliance.controller import ENDPOINT_HEALTH
from appliance.intent import endpoints_up
from appliance.state import StateStore
from bgp.status import neighbor_key

from .commands import CommandCheck
from .tracking import Observation

__all__ = ["observe"]


def _bgp_state(store: StateStore, name: str) -> Observation | None:
    status = store.get(neighbor_key(ipaddress.ip_address(name)))
    return None if status is None else status.state


def _service_up(store: StateStore, cfg: Config | None, name: str) -> bool:
    service = next((s for s in cfg.services if s.name == name), None) if cfg else None
    return service is not None and any(endpoints_up(service, store.get(ENDPOINT_HEALTH) or {}))


def observe(
    tracks: Iterable[Track],
    *,
    interfaces: Mapping[str, str],
    store: StateStore,
    config: Config | None,
    commands: Mapping[str, CommandCheck],
) -> dict[tuple[TrackType, str], Observation]:
    """One observation per distinct tracked object (missing ones count as down)."""
    out: dict[tuple[TrackType, str], Observation] = {}
    for track in tracks:
        key = (track.type, track.name)
        found: Observation | None
        if track.type is TrackType.INTERFACE:
            found = interfaces.get(track.name)
        elif track.type is TrackType.BGP_PEER:
            found = _bgp_state(store, track.name)
        elif track.type is TrackType.SERVICE:
            found = _service_up(store, config, track.name)
        else:
            check = commands.get(track.name)
            found = None if check is None or check.status is None else check.status
        if found is not None:
            out[key] = found
    return out
