"""What a change of the ``bgp`` config section means for a running speaker, pure.

`plan` compares the section the speaker runs with a new one and says what the speaker has to
do, so that a commit touches only what changed:

* settings that go into every session's OPEN (local AS, router id, graceful restart) reset all
  sessions — a peer only learns them from a new OPEN;
* a peer's session settings (AS, port, hold time, passive, TCP-MD5, GTSM, multihop) reset that
  peer's session alone; its description and prefix limit are updated in place;
* import filters are re-applied to the routes already held in each Adj-RIB-In (it keeps rejected
  routes), without resetting anything;
* the listening socket and the kernel route sync are replaced or started/stopped on their own:
  established sessions do not depend on either.

Advertised attributes (``advertise``) need nothing here: they reach the speaker through the
node's intent.
"""

from __future__ import annotations

import attrs

from appliance.config.model import Bgp, BgpPeer

from .sockopts import IPAddress


def session_settings(peer: BgpPeer) -> BgpPeer:
    """The part of a peer's config its session (OPEN, TCP) is built from: the peer without the
    fields the speaker can change under a running session."""
    return attrs.evolve(peer, description=None, max_prefixes=None)


def global_settings(bgp: Bgp) -> tuple[object, ...]:
    """What every session's OPEN carries: a change resets them all."""
    return (bgp.asn, bgp.router_id, bgp.graceful_restart)


@attrs.frozen
class BgpPlan:
    """The steps that take a speaker from one ``bgp`` section to another."""

    removed: tuple[IPAddress, ...] = ()  # peers no longer configured: Cease "Peer De-configured"
    reset: tuple[BgpPeer, ...] = ()  # session settings changed: Cease, then a fresh session
    added: tuple[BgpPeer, ...] = ()  # new peers
    updated: tuple[BgpPeer, ...] = ()  # only in-place fields changed (description, limit)
    reset_all: bool = False  # a global OPEN setting changed: every session is rebuilt
    imports_changed: bool = False  # re-judge every Adj-RIB-In with the new import policy
    listen_changed: bool = False
    install_routes_changed: bool = False

    @property
    def empty(self) -> bool:
        return self == BgpPlan()


def plan(old: Bgp, new: Bgp) -> BgpPlan:
    """The difference between the running section ``old`` and the wanted ``new``."""
    before = {peer.address: peer for peer in old.peers}
    after = {peer.address: peer for peer in new.peers}
    reset_all = global_settings(old) != global_settings(new)
    removed = tuple(address for address in before if address not in after)
    added = tuple(peer for address, peer in after.items() if address not in before)
    kept = [(before[address], peer) for address, peer in after.items() if address in before]
    reset = tuple(
        new_peer
        for old_peer, new_peer in kept
        if reset_all or session_settings(old_peer) != session_settings(new_peer)
    )
    updated = tuple(
        new_peer for old_peer, new_peer in kept if old_peer != new_peer and new_peer not in reset
    )
    return BgpPlan(
        removed=removed,
        reset=reset,
        added=added,
        updated=updated,
        reset_all=reset_all,
        imports_changed=old.imports != new.imports,
        listen_changed=old.listen_port != new.listen_port,
        install_routes_changed=old.install_routes != new.install_routes,
    )
