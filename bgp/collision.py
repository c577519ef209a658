"""Connection collision detection (RFC 4271 §6.8, RFC 6286 §2.3).

Both speakers may open a TCP connection at the same time. Once both connections carry the
peer's OPEN, the one initiated by the speaker with the higher BGP Identifier survives; the other
is closed with Cease / Connection Collision Resolution. An Established session always wins: a new
incoming connection is then refused with Cease / Connection Rejected.

`resolve_collision` is the pure rule; `PeerConnections` applies it to the (at most two)
`BgpSession`s the shell holds for one peer.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Literal, TypeAlias

import attrs

from bgp.errors import CeaseSubcode
from bgp.fsm import CONNECTED_STATES, State
from bgp.session import BgpSession

CollisionOutcome: TypeAlias = Literal["keep_existing", "keep_new"]


def resolve_collision(
    local_id: IPv4Address,
    remote_id: IPv4Address,
    existing_initiated_locally: bool,
    *,
    local_asn: int = 0,
    remote_asn: int = 0,
) -> CollisionOutcome:
    """Which of two connections to the same peer survives.

    The connection initiated by the side with the higher BGP Identifier (compared as 32-bit
    unsigned integers) is kept. Equal identifiers are legal between different ASes (RFC 6286):
    then the side with the larger AS number wins. If everything is equal, keep the existing one.
    """
    local_key = (int(local_id), local_asn)
    remote_key = (int(remote_id), remote_asn)
    if local_key == remote_key:
        return "keep_existing"
    keep_locally_initiated = local_key > remote_key
    return "keep_existing" if existing_initiated_locally == keep_locally_initiated else "keep_new"


@attrs.define
class PeerConnections:
    """The sessions the shell holds for one peer: ``current`` and at most one ``contender``
    (a session for an incoming connection that races it).

    The shell passes each new incoming connection's session (started passive and given
    `connection_made`) to `accept`, and calls `resolve` after feeding input to either session.
    A session returned by either method has been closed (its NOTIFICATION is in
    `data_to_send`, a `CloseRequested` is queued); the shell flushes it and forgets it.
    """

    current: BgpSession | None = None
    contender: BgpSession | None = None

    @property
    def sessions(self) -> list[BgpSession]:
        return [s for s in (self.current, self.contender) if s is not None]

    def accept(self, session: BgpSession, now: float) -> bool:
        """Take a session for a new incoming connection; False if it was refused (Cease /
        Connection Rejected) because a session is Established or another one is racing."""
        if self.current is None:
            self.current = session
            return True
        if self.current.state is State.ESTABLISHED or self.contender is not None:
            session.cease(now, CeaseSubcode.CONNECTION_REJECTED)
            return False
        self.contender = session
        return True

    def resolve(self, now: float) -> BgpSession | None:
        """Settle a collision if one can be decided now; return the session that was closed."""
        current, contender = self.current, self.contender
        if current is None or contender is None:
            return None
        if contender.state not in CONNECTED_STATES:
            # The incoming connection died on its own: drop it, never let it restart.
            self.contender = None
            contender.cease(now, CeaseSubcode.CONNECTION_REJECTED)
            return contender
        if current.state not in CONNECTED_STATES:
            if contender.state is not State.ESTABLISHED:
                return None
            return self._keep(contender, current, now, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        if current.peer_open is None or contender.peer_open is None:
            return None  # a connection still in OpenSent: no BGP Identifier to compare yet
        current_up = current.state is State.ESTABLISHED
        contender_up = contender.state is State.ESTABLISHED
        if current_up and not contender_up:
            return self._keep(current, contender, now, CeaseSubcode.CONNECTION_REJECTED)
        if contender_up and not current_up:
            return self._keep(contender, current, now, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        outcome = resolve_collision(
            current.config.local_router_id,
            contender.peer_open.identifier,
            bool(current.initiated_locally),
            local_asn=current.config.local_asn,
            remote_asn=contender.peer_open.asn,
        )
        subcode = CeaseSubcode.CONNECTION_COLLISION_RESOLUTION
        if outcome == "keep_existing":
            return self._keep(current, contender, now, subcode)
        return self._keep(contender, current, now, subcode)

    def _keep(
        self, winner: BgpSession, loser: BgpSession, now: float, subcode: CeaseSubcode
    ) -> BgpSession:
        self.current, self.contender = winner, None
        loser.cease(now, subcode)
        return loser
