"""What the BGP speaker publishes in the state store, for the API, the CLI and other services."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import attrs

from appliance.config.values import IPAddress
from appliance.state import StateKey

from .codec.attributes import PathAttributes
from .rib import Route
from .types import Prefix


@attrs.frozen
class NeighborStatus:
    address: IPAddress
    asn: int
    description: str | None
    state: str  # RFC 4271 state name: Idle, Connect, Active, OpenSent, OpenConfirm, Established
    established_at: float | None  # wall-clock seconds since the epoch
    established_count: int
    prefixes_received: int
    prefixes_accepted: int
    prefixes_advertised: int
    updates_received: int
    updates_sent: int
    last_error: str | None
    local_address: IPAddress | None = None
    peer_router_id: str | None = None
    hold_time: int | None = None
    four_octet_as: bool | None = None
    graceful_restart: bool | None = None
    #: the longest wait between two KEEPALIVE/UPDATE sent in this session (s; the hold time
    #: is the deadline)
    keepalive_gap_max_s: float | None = None


class RibView(Protocol):
    """Read-only access to the speaker's tables (published as a state value)."""

    def received(self, peer: IPAddress | None = None) -> Iterator[Route]: ...

    def advertised(
        self, peer: IPAddress | None = None
    ) -> Iterator[tuple[IPAddress, Prefix, PathAttributes]]: ...

    def best(self) -> Iterator[Route]: ...


class BgpControl(Protocol):
    """Operator actions on the speaker (published as a state value for the API)."""

    def shutdown_peer(self, address: IPAddress, communication: str | None) -> bool: ...

    def enable_peer(self, address: IPAddress) -> bool: ...

    def refresh_peer(self, address: IPAddress) -> bool: ...


def neighbor_key(address: IPAddress) -> StateKey[NeighborStatus]:
    return StateKey(f"bgp/neighbor/{address}")


BGP_RIB_VIEW = StateKey[RibView]("bgp/rib_view")
BGP_CONTROL = StateKey[BgpControl]("bgp/control")
