"""The HA election service: the Trio shell around the sans-IO VRRPv3 instances.

One `VrrpInstance` per configured group, one raw socket per interface (`transport`), and:

* a receive task per interface: IP header checks, `wire.decode` (with the group's key and a
  replay guard), `receive_advert`;
* a timer loop sleeping until the earliest instance deadline (woken after every pump);
* a tracking loop polling the oper state of tracked interfaces every 200 ms
  (`tracking.evaluate` → `set_fault` / `set_priority_adjustment`);
* a VIP reconciler per group: owns the VIPs exactly while the group is MASTER (adds them and
  sends gratuitous ARPs on becoming MASTER, removes them on leaving it and on stop).

`pump` is the one place instance output is handled: `SendAdvert` is encoded and sent at once
(sending never blocks), `StateChanged` publishes the group's role under `role_key(group)`
and wakes the group's VIP reconciler. On cancellation every instance is stopped (a MASTER
resigns with priority 0, sent before returning) and the VIPs are removed, shielded and
bounded by `STOP_TIMEOUT_S`.

IPv4 groups only for now. Tracks of types other than ``interface`` are not observed yet and
are ignored (with a warning). The join gate stays open (conntrack sync will drive it).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from pathlib import Path

import trio

from appliance.boot import list_interfaces
from appliance.config.model import Ha, HaGroup, Track, TrackType
from appliance.ha.status import GroupStatus, group_status_key
from appliance.intent import HaRole, role_key
from appliance.state import StateStore
from appliance.structlog import get_logger

from . import garp, tracking, vips, wire
from .errors import HaError, HaErrorReason
from .instance import InstanceConfig, SendAdvert, State, StateChanged, VrrpInstance
from .sync_group import SyncGroupCoordinator
from .transport import AuthCounter, VrrpSocket

log = get_logger("ha")

__all__ = ["AUTH_KEY_ID", "STOP_TIMEOUT_S", "TRACK_INTERVAL_S", "HaService", "read_auth_key"]

TRACK_INTERVAL_S = 0.2
STOP_TIMEOUT_S = 2.0
RETRY_S = 0.5
AUTH_KEY_ID = 1
UNKNOWN_PEER = "unknown-peer"  # a unicast group's advert from an address not in its peers


def read_auth_key(path: Path) -> wire.AuthKeys:
    """The group's keys from its key file: the file's contents (stripped) are the HMAC key."""
    secret = path.read_bytes().strip()
    if not secret:
        raise HaError(HaErrorReason.BAD_CONFIG, f"empty key file {path}")
    return wire.AuthKeys(wire.AuthKey(AUTH_KEY_ID, secret))


class _Group:
    """One group's instance and the shell's state around it."""

    def __init__(
        self, config: HaGroup, local: ipaddress.IPv4Address, auth: wire.AuthKeys | None
    ) -> None:
        self.config = config
        self.id = config.id
        self.local = local
        self.auth = auth
        self.replay = wire.ReplayGuard()
        self.instance = VrrpInstance(InstanceConfig.from_group(config, local))
        self.vips = tuple(ipaddress.IPv4Address(v) for v in config.vips)
        self.peers = tuple(ipaddress.IPv4Address(p) for p in config.unicast_peers)
        self.tracks: tuple[Track, ...] = tuple(
            t for t in config.track if t.type is TrackType.INTERFACE
        )
        self.owns_vips = False  # desired: the group is MASTER
        self.mastered = 0  # times it became MASTER: each one is announced by gratuitous ARP
        self.delta = 0
        self.vips_changed = trio.Event()
        self.transitions = 0
        self.last_reason: str | None = None
        self.rejected: dict[str, int] = {}
        self.received = 0
        self.sent = 0

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def _check_ipv4(group: HaGroup) -> None:
    for address in (*group.vips, *group.unicast_peers):
        if address.version != 4:
            raise HaError(
                HaErrorReason.BAD_ADDRESS_FAMILY,
                f"HA group {group.id}: {address} (IPv6 groups are not supported yet)",
            )


class HaService:
    def __init__(
        self,
        ha: Ha,
        store: StateStore,
        primary: Mapping[str, ipaddress.IPv4Address],
        *,
        garp_count: int = garp.DEFAULT_COUNT,
        track_interval_s: float = TRACK_INTERVAL_S,
    ) -> None:
        self.ha = ha
        self._store = store
        self._primary = dict(primary)
        self._garp_count = garp_count
        self._track_interval_s = track_interval_s
        for group in ha.groups:
            _check_ipv4(group)
            if group.interface not in self._primary:
                raise HaError(
                    HaErrorReason.BAD_CONFIG,
                    f"HA group {group.id}: no IPv4 address on {group.interface}",
                )
        self._groups: dict[int, _Group] = {}
        self._sync: list[SyncGroupCoordinator] = []
        self._lone: list[_Group] = []
        self._sockets: dict[str, VrrpSocket] = {}
        self._counter = AuthCounter()
        self._timer_wake = trio.Event()

    @property
    def groups(self) -> Mapping[int, VrrpInstance]:
        return {gid: g.instance for gid, g in self._groups.items()}

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Elect until cancelled; then resign (priority 0) and release the VIPs, shielded."""
        await self._build()
        try:
            async with trio.open_nursery() as nursery:
                for ifname, sock in self._sockets.items():
                    nursery.start_soon(self._receive_loop, ifname, sock)
                await self._observe_tracks()  # observe before starting: a down link → FAULT
                now = trio.current_time()
                for group in self._groups.values():
                    group.instance.start(now)
                    nursery.start_soon(self._vip_loop, group)
                self.pump()
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._track_loop)
                log.info(
                    "ha_started",
                    groups=[g.id for g in self._groups.values()],
                    interfaces=sorted(self._sockets),
                )
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT_S):
                await self._stop()
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()

    async def _build(self) -> None:
        sockets: dict[str, VrrpSocket] = {}
        try:
            for group in self.ha.groups:
                local = self._primary[group.interface]
                auth = None
                if group.auth_key_file is not None:
                    auth = await trio.to_thread.run_sync(read_auth_key, group.auth_key_file)
                self._groups[group.id] = _Group(group, local, auth)
                self._store.publish(role_key(group.id), HaRole.INIT)
                if group.interface not in sockets:
                    sockets[group.interface] = VrrpSocket.open(group.interface, local)
        except BaseException:
            for sock in sockets.values():
                sock.close()
            raise
        self._sockets = sockets
        in_sync: set[int] = set()
        for sync in self.ha.sync_groups:
            members = {gid: self._groups[gid].instance for gid in sync.groups}
            self._sync.append(SyncGroupCoordinator(sync.name, members))
            in_sync.update(sync.groups)
        self._lone = [g for gid, g in self._groups.items() if gid not in in_sync]
        for group in self.ha.groups:
            ignored = [
                f"{t.type}:{t.name}" for t in group.track if t.type is not TrackType.INTERFACE
            ]
            if ignored:
                log.warning("ha_tracks_not_observed", group=group.id, tracks=ignored)

    async def _stop(self) -> None:
        now = trio.current_time()
        for group in self._groups.values():
            group.instance.stop(now)
        self.pump()  # the priority-0 resignations leave here, synchronously
        for group in self._groups.values():
            group.owns_vips = False
            try:
                await trio.to_thread.run_sync(vips.remove_vips, group.config.interface, group.vips)
            except Exception as exc:
                log.error("ha_vip_remove_failed", group=group.id, error=str(exc))
        log.info("ha_stopped")

    # --- the one place instance output is handled ---------------------------------------------

    def pump(self) -> None:
        now = trio.current_time()
        events = [e for coordinator in self._sync for e in coordinator.pump(now)]
        for group in self._lone:
            events.extend((group.id, event) for event in group.instance.events())
        for gid, event in events:
            group = self._groups[gid]
            if isinstance(event, SendAdvert):
                self._send(group, event)
            elif isinstance(event, StateChanged):
                self._state_changed(group, event)
        for group in self._groups.values():  # the master seen, the priority: unchanged is free
            self._publish_status(group)
        self._timer_wake.set()

    def _send(self, group: _Group, event: SendAdvert) -> None:
        sock = self._sockets.get(group.config.interface)
        if sock is None:
            return
        advert = wire.Advert(group.id, event.priority, event.interval_cs, group.vips)
        for dst in group.peers or (wire.VRRP_GROUP_V4,):
            counter = self._counter.next() if group.auth is not None else 0
            payload = wire.encode(advert, group.local, dst, auth=group.auth, counter=counter)
            if sock.send(payload, dst):
                group.sent += 1
            else:
                log.debug("ha_advert_dropped", group=group.id, dst=str(dst))

    def _state_changed(self, group: _Group, event: StateChanged) -> None:
        log.info(
            "ha_state",
            group=group.id,
            old=event.old.value,
            new=event.new.value,
            reason=str(event.reason),
            priority=group.instance.priority,
        )
        self._store.publish(role_key(group.id), event.new.role)
        group.transitions += 1
        group.last_reason = str(event.reason)
        group.owns_vips = event.new is State.MASTER
        group.mastered += event.new is State.MASTER
        group.vips_changed.set()

    def _publish_status(self, group: _Group) -> None:
        instance = group.instance
        self._store.publish(
            group_status_key(group.id),
            GroupStatus(
                id=group.id,
                interface=group.config.interface,
                state=instance.state.value,
                role=instance.state.role,
                priority=instance.priority,
                configured_priority=group.config.priority,
                master_address=instance.master_address,
                vips=group.config.vips,
                transitions=group.transitions,
                last_reason=group.last_reason,
                rejected=dict(group.rejected),
                received=group.received,
                sent=group.sent,
            ),
        )

    # --- tasks --------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            deadlines = [
                d for g in self._groups.values() if (d := g.instance.get_timer()) is not None
            ]
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await self._timer_wake.wait()
            now = trio.current_time()
            for group in self._groups.values():
                timer = group.instance.get_timer()
                if timer is not None and timer <= now:
                    group.instance.handle_timer(now)
            self.pump()
            # re-armed after our own pump: only other tasks' pumps (or a deadline) wake us
            self._timer_wake = trio.Event()

    async def _receive_loop(self, ifname: str, sock: VrrpSocket) -> None:
        by_vrid = {g.id: g for g in self._groups.values() if g.config.interface == ifname}
        while True:
            datagram = await sock.receive()
            payload = datagram.payload
            if datagram.src == sock.local or len(payload) < wire.HEADER_LENGTH:
                continue
            group = by_vrid.get(payload[1])
            if group is None:
                continue
            if group.peers and datagram.src not in group.peers:
                group.reject(UNKNOWN_PEER)
                log.debug("ha_advert_ignored", group=group.id, src=str(datagram.src))
                self._publish_status(group)
                continue
            try:
                wire.check_ttl(datagram.ttl)
                advert = wire.decode(
                    payload, datagram.src, datagram.dst, auth=group.auth, replay=group.replay
                )
            except HaError as exc:
                group.reject(str(exc.reason))
                self._publish_status(group)
                log.debug(
                    "ha_advert_rejected",
                    group=group.id,
                    src=str(datagram.src),
                    reason=str(exc.reason),
                )
                continue
            group.received += 1
            group.instance.receive_advert(advert, datagram.src, trio.current_time())
            self.pump()

    async def _track_loop(self) -> None:
        while True:
            await trio.sleep(self._track_interval_s)
            await self._observe_tracks()

    async def _observe_tracks(self) -> None:
        tracked = [g for g in self._groups.values() if g.tracks]
        if not tracked:
            return
        states = await trio.to_thread.run_sync(list_interfaces)
        observations: dict[tuple[TrackType, str], tracking.Observation] = {
            (TrackType.INTERFACE, name): state for name, state in states.items()
        }
        now = trio.current_time()
        for group in tracked:
            result = tracking.evaluate(group.tracks, observations)
            instance = group.instance
            if result.fault != instance.local_fault:
                log.info(
                    "ha_track",
                    group=group.id,
                    fault=result.fault,
                    down=[t.name for t in result.down],
                )
                instance.set_fault(result.fault, now)
            if result.delta != group.delta:
                group.delta = result.delta
                instance.set_priority_adjustment(result.delta, now)
        self.pump()

    async def _vip_loop(self, group: _Group) -> None:
        """Make the interface's VIPs follow ``group.owns_vips``; announce them when taken.

        Starts from "unknown", so a first pass as non-MASTER removes VIPs left by a crash."""
        ifname = group.config.interface
        applied: bool | None = None
        announced = 0
        while True:
            want = group.owns_vips
            if want == applied and (not want or announced == group.mastered):
                group.vips_changed = trio.Event()
                await group.vips_changed.wait()
                continue
            try:
                if want:
                    mastered = group.mastered
                    added = await trio.to_thread.run_sync(vips.add_vips, ifname, group.vips)
                    log.info("ha_vips_added", group=group.id, vips=[str(v) for v in added])
                    for round_ in range(self._garp_count):
                        if not group.owns_vips:
                            break  # lost MASTER meanwhile: release the VIPs without delay
                        if round_:
                            await trio.sleep(garp.DEFAULT_SPACING_S)
                        await garp.send_garps(ifname, group.vips, count=1)
                    announced = mastered
                else:
                    removed = await trio.to_thread.run_sync(vips.remove_vips, ifname, group.vips)
                    if removed:
                        log.info("ha_vips_removed", group=group.id, vips=[str(v) for v in removed])
            except Exception as exc:
                log.warning("ha_vips_failed", group=group.id, owns=want, error=str(exc))
                await trio.sleep(RETRY_S)
                continue
            applied = want
