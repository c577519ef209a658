"""The HA election service: the Trio shell around the sans-IO VRRPv3 instances.

One `VrrpInstance` per configured group, one raw socket per interface (`transport`), and:

* a receive task per interface: IP header checks, `wire.decode` (with the group's keys and a
  replay guard), `receive_advert`; every discarded advert is counted by reason;
* a timer loop sleeping until the earliest instance deadline (woken after every pump);
* a tracking loop (every 100 ms, and at once when a command track flips) observing the
  tracked objects (`observe`) → `tracking.evaluate` → `set_fault` / `set_priority_adjustment`;
  a task per ``command`` track runs it every interval;
* a VIP reconciler per group: owns the VIPs exactly while the group is MASTER (adds them and
  announces the on-link ones by gratuitous ARP on becoming MASTER, removes them on leaving it
  and on stop). VIPs on-link on the group's interface go there, the others on ``lo``
  (`placement`). A group's VIPs are those the intent gives it (`NodeIntent.group_vips`: its
  ``vips`` and the addresses allocated from its ``pools``); when they change (a service with
  a pool address added or removed) the new ones are taken and announced and the dropped ones
  released, without a role change;
* a notifier task per group with a ``notify`` command (`commands.Notifier`);
* the join gate: with conntrack sync configured the instances start with the gate closed and
  open it when sync publishes `SYNC_RESYNCED` (or after ``ha.join_timeout_ms``); it closes
  again while sync is behind a peer that was down, until that peer resynced to this node;
* a config follower (`each_config`): each new ``ha`` section is applied as a difference
  (`reconfigure.plan`) and answered by `Applied` under ``applied_key("ha")``. What can fail
  (new groups' source address, socket, key file, placement) is prepared first: on failure
  nothing changed and `Applied` carries the error. Then removed groups resign (priority 0, so
  a backup takes over at once) and release their VIPs, their role and status unpublished;
  a group on another interface or family is removed and added again; added groups start as at
  start-up (join gate included); every other change (priority, preempt, interval, tracks and
  weights, peers, key file, notify hook, VIPs) is applied to the running group in place
  (`VrrpInstance.reconfigure`): its role changes only when the new priorities say so;
* a key reloader: after every reload, changed config or not, the key files are read again
  (key rotation).

`pump` is the one place instance output is handled: `SendAdvert` is encoded and sent at once
(sending never blocks), `StateChanged` publishes the group's role under `role_key(group)`,
queues the notify hook and wakes the group's VIP reconciler. On cancellation every instance is
stopped (a MASTER resigns with priority 0, sent before returning) and the VIPs are removed,
shielded and bounded by `STOP_TIMEOUT_S`.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

import attrs
import trio

from appliance.config.model import Config, Ha, HaGroup, TrackType
from appliance.config.values import IPAddress
from appliance.ha.status import HA_CONTROL, GroupStatus, group_status_key
from appliance.intent import INTENT, HaRole, role_key
from appliance.keys import (
    RUNNING_CONFIG,
    SYNC_RESYNCED,
    Applied,
    applied_key,
    each_config,
    each_reload,
)
from appliance.state import StateStore
from appliance.structlog import get_logger

from . import garp, placement, reconfigure, tracking, vips, wire
from .commands import CommandCheck, Notifier
from .errors import HaError, HaErrorReason
from .instance import (
    MIN_PRIORITY,
    InstanceConfig,
    SendAdvert,
    State,
    StateChanged,
    VrrpInstance,
)
from .keyfile import read_auth_keys
from .linkstate import oper_states
from .observe import observe
from .sync_group import SyncGroupCoordinator
from .transport import AuthCounter, Datagram, VrrpSocket

log = get_logger("ha")

__all__ = [
    "SERVICE_NAME",
    "STOP_TIMEOUT_S",
    "TRACK_INTERVAL_S",
    "UNKNOWN_PEER",
    "HaService",
    "Sources",
    "discover_sources",
]

SERVICE_NAME = "ha"  # the supervisor's name of the service: where its `Applied` goes

TRACK_INTERVAL_S = 0.1
STOP_TIMEOUT_S = 2.0
RETRY_S = 0.5
EARLY_WAKE_S = 0.002
UNKNOWN_PEER = "unknown-peer"  # a unicast group's advert from an address not in its peers


class _Group:
    """One group's instance and the shell's state around it."""

    def __init__(
        self,
        config: HaGroup,
        local: IPAddress,
        auth: wire.AuthKeys | None,
        *,
        join_timeout_s: float,
    ) -> None:
        self.config = config
        self.id = config.id
        self.local = local
        self.auth = auth
        self.replay = wire.ReplayGuard()
        self.instance = VrrpInstance(
            InstanceConfig.from_group(config, local, join_gate_timeout_s=join_timeout_s)
        )
        self.vips: tuple[IPAddress, ...] = config.vips
        self.peers: tuple[IPAddress, ...] = config.unicast_peers
        # where each VIP goes (`placement`); decided at start from the interface's networks
        self.placed: dict[str, tuple[IPAddress, ...]] = {config.interface: self.vips}
        self.notifier = Notifier(config.notify, config.id) if config.notify else None
        self.announcer = garp.Announcer(config.interface)
        self.retired: dict[str, set[IPAddress]] = {}  # dropped from the group, to remove
        self.owns_vips = False  # desired: the group is MASTER
        self.mastered = 0  # times it became MASTER: each one is announced by gratuitous ARP
        self.claimed = 0  # the `mastered` count whose VIPs `_claim` added and announced
        self.delta = 0
        self.vips_changed = trio.Event()
        self.transitions = 0
        self.last_reason: str | None = None
        self.rejected: dict[str, int] = {}
        self.received = 0
        self.sent = 0
        self.task: _Task | None = None  # the VIP loop
        self.notifier_task: _Task | None = None

    @property
    def socket_key(self) -> tuple[str, int]:
        return (self.config.interface, self.local.version)

    @property
    def announced(self) -> tuple[IPAddress, ...]:
        """The VIPs announced on the link when taken: those on the group's interface."""
        return self.placed.get(self.config.interface, ())

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class _Task:
    """A task of the service's nursery that can be stopped alone (a group's VIP loop, a
    socket's receiver, a command track), while the others go on."""

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self.done = trio.Event()

    async def run(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            with self.scope:
                await fn(*args)
        finally:
            self.done.set()

    def cancel(self) -> None:
        self.scope.cancel()

    async def stop(self) -> None:
        """Cancel the task and wait until it has finished."""
        self.cancel()
        await self.done.wait()


@attrs.define
class _Ready:
    """What a config change prepared before it changes anything (`HaService._apply`)."""

    groups: list[_Group] = attrs.field(factory=list)  # to start: added or rebuilt
    sockets: dict[tuple[str, int], VrrpSocket] = attrs.field(factory=dict)  # opened for them
    keys: dict[int, wire.AuthKeys | None] = attrs.field(factory=dict)  # by group: new key file
    instances: dict[int, InstanceConfig] = attrs.field(factory=dict)  # the running groups'


def _close_all(sockets: Mapping[tuple[str, int], VrrpSocket], groups: Iterable[_Group]) -> None:
    """Close what prepared groups opened (they never ran)."""
    for sock in sockets.values():
        sock.close()
    for group in groups:
        group.announcer.close()


def _merged(
    placed: Mapping[str, tuple[IPAddress, ...]], retired: Mapping[str, set[IPAddress]]
) -> dict[str, tuple[IPAddress, ...]]:
    """Every address a group may hold: its placement and what it retired but did not remove."""
    out = {ifname: tuple(addresses) for ifname, addresses in placed.items()}
    for ifname, addresses in retired.items():
        extra = tuple(a for a in sorted(addresses, key=str) if a not in out.get(ifname, ()))
        out[ifname] = (*out.get(ifname, ()), *extra)
    return out


def group_family(group: HaGroup) -> int:
    """The group's address family (4 or 6): that of its VIPs, which must agree."""
    versions = {a.version for a in (*group.vips, *group.unicast_peers)}
    if len(versions) != 1:
        raise HaError(
            HaErrorReason.BAD_ADDRESS_FAMILY,
            f"HA group {group.id}: IPv4 and IPv6 VIPs or peers mixed; use one group per family",
        )
    return versions.pop()


@attrs.frozen
class Sources:
    """The source address of the adverts on each interface: its primary IPv4 address, and
    its link-local IPv6 address (RFC 5798 §5.1.2.1)."""

    ipv4: Mapping[str, ipaddress.IPv4Address] = attrs.field(factory=dict)
    ipv6: Mapping[str, ipaddress.IPv6Address] = attrs.field(factory=dict)

    def for_group(self, group: HaGroup) -> IPAddress:
        family = group_family(group)
        found = (self.ipv4 if family == 4 else self.ipv6).get(group.interface)
        if found is None:
            kind = "IPv4 address" if family == 4 else "IPv6 link-local address"
            raise HaError(
                HaErrorReason.BAD_CONFIG, f"HA group {group.id}: no {kind} on {group.interface}"
            )
        return found


def _command_intervals(ha: Ha) -> dict[str, float]:
    """The ``command`` tracks of the section: command → interval in seconds."""
    return {
        t.name: t.interval_ms / 1000
        for group in ha.groups
        for t in group.track
        if t.type is TrackType.COMMAND
    }


def discover_sources(groups: Iterable[HaGroup]) -> Sources:
    """Blocking (pyroute2): the advert source addresses on the groups' interfaces."""
    groups = tuple(groups)
    ifnames = {g.interface for g in groups}
    ipv4 = vips.primary_addresses(ifnames, [v for g in groups for v in g.vips])
    ipv6 = {name: ll for name in ifnames if (ll := vips.link_local_address(name)) is not None}
    return Sources(ipv4=ipv4, ipv6=ipv6)


def arrival(datagram: Datagram) -> float:
    """When ``datagram`` arrived, on Trio's clock: now, less the time it waited in the socket
    (from its kernel timestamp; clamped to [0, 1 s] against wall-clock steps)."""
    now = trio.current_time()
    if datagram.arrived is None:
        return now
    return now - min(max(time.time() - datagram.arrived, 0.0), 1.0)


class HaService:
    def __init__(
        self,
        ha: Ha,
        store: StateStore,
        sources: Sources,
        *,
        garp_count: int = garp.DEFAULT_COUNT,
        track_interval_s: float = TRACK_INTERVAL_S,
        join_gate: bool = False,
    ) -> None:
        self.ha = ha
        self._store = store
        self._garp_count = garp_count
        self._track_interval_s = track_interval_s
        self._join_gate = join_gate
        self._gate_open = not join_gate  # the join gate of the instances (`_join_loop`)
        self._locals = {group.id: sources.for_group(group) for group in ha.groups}
        self._groups: dict[int, _Group] = {}
        self._sync: list[SyncGroupCoordinator] = []
        self._lone: list[_Group] = []
        self._sockets: dict[tuple[str, int], VrrpSocket] = {}
        self._receivers: dict[tuple[str, int], _Task] = {}
        self._counter = AuthCounter()
        self._addresses = vips.AddressEditor()
        self._timer_wake = trio.Event()
        self._track_wake = trio.Event()
        self._due = math.inf  # the deadline the timer loop last slept until
        self._commands: dict[str, CommandCheck] = {}
        self._command_tasks: dict[str, _Task] = {}
        self._nursery: trio.Nursery | None = None
        # one config change, key reload or VIP change at a time: each awaits worker threads
        self._changing = trio.Lock()
        #: operators' runtime priorities (group id -> priority), until cleared
        self._overrides: dict[int, int] = {}

    @property
    def groups(self) -> Mapping[int, VrrpInstance]:
        return {gid: g.instance for gid, g in self._groups.items()}

    # --- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Elect until cancelled; then resign (priority 0) and release the VIPs, shielded."""
        await self._build()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for key, sock in self._sockets.items():
                    self._receivers[key] = self._spawn(self._receive_loop, key, sock)
                await self._add_commands(self.ha)  # every command once, before observing
                await self._observe_tracks()  # observe before starting: a down link → FAULT
                now = trio.current_time()
                for group in self._groups.values():
                    self._start_group(group, now)
                self.pump()
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._track_loop)
                if self._join_gate:
                    nursery.start_soon(self._join_loop)
                nursery.start_soon(self._config_loop)
                nursery.start_soon(self._keys_loop)
                nursery.start_soon(self._intent_loop)
                self._store.publish(HA_CONTROL, self)
                log.info(
                    "ha_started",
                    groups=[g.id for g in self._groups.values()],
                    interfaces=sorted({ifname for ifname, _ in self._sockets}),
                    join_gate=self._join_gate,
                )
                task_status.started()
        finally:
            self._nursery = None
            self._store.remove(HA_CONTROL)
            with trio.CancelScope(shield=True), trio.move_on_after(STOP_TIMEOUT_S):
                await self._stop()
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
            for group in self._groups.values():
                group.announcer.close()
            self._addresses.close()

    async def _build(self) -> None:
        opened: dict[tuple[str, int], VrrpSocket] = {}
        try:
            for group in self.ha.groups:
                g = await self._prepare(group, self._locals[group.id], opened, self.ha)
                self._groups[group.id] = g
                self._store.publish(role_key(group.id), HaRole.INIT)
        except BaseException:
            _close_all(opened, self._groups.values())
            raise
        self._sockets = opened
        self._regroup()

    async def _prepare(
        self,
        group: HaGroup,
        local: IPAddress,
        opened: dict[tuple[str, int], VrrpSocket],
        ha: Ha,
    ) -> _Group:
        """A group of ``ha`` ready to start: keys read, VIPs placed, its socket open (added
        to ``opened`` when new), the address requests and announcements prepared (so that a
        takeover only sends). Raises `HaError` or `OSError` when it cannot run."""
        auth = await self._read_keys(group)
        join_timeout_s = ha.join_timeout_ms / 1000
        g = _Group(group, local, auth, join_timeout_s=join_timeout_s)
        try:
            g.vips = self._intended_vips(group)
            g.placed = await self._place(group.interface, g.vips)
            if g.socket_key not in self._sockets and g.socket_key not in opened:
                opened[g.socket_key] = VrrpSocket.open(group.interface, local)
            for ifname, addresses in g.placed.items():
                self._addresses.prepare(ifname, addresses)
            if g.announced:
                g.announcer.prepare(g.announced)
        except BaseException:
            g.announcer.close()
            raise
        return g

    @staticmethod
    async def _read_keys(group: HaGroup) -> wire.AuthKeys | None:
        if group.auth_key_file is None:
            return None
        return await trio.to_thread.run_sync(read_auth_keys, group.auth_key_file)

    def _regroup(self) -> None:
        """The sync group coordinators and the lone groups, from ``self.ha`` and the running
        groups; a group no longer in a sync group is no longer held by one."""
        in_sync: set[int] = set()
        self._sync = []
        for sync in self.ha.sync_groups:
            members = {
                gid: self._groups[gid].instance for gid in sync.groups if gid in self._groups
            }
            self._sync.append(SyncGroupCoordinator(sync.name, members))
            in_sync.update(members)
        self._lone = [g for gid, g in self._groups.items() if gid not in in_sync]
        now = trio.current_time()
        for group in self._lone:
            if group.instance.faulted_by_sync:
                group.instance.set_sync_fault(False, now)

    def _start_group(self, group: _Group, now: float) -> None:
        """Start the group's instance (gate closed while the service's is) and its tasks."""
        if not self._gate_open:
            group.instance.set_join_gate(False, now)
        group.instance.start(now)
        group.task = self._spawn(self._vip_loop, group)
        if group.notifier is not None:
            group.notifier_task = self._spawn(group.notifier.run)

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> _Task:
        """Run ``fn(*args)`` in the service's nursery as a task that can be stopped alone."""
        assert self._nursery is not None
        task = _Task()
        self._nursery.start_soon(task.run, fn, *args)
        return task

    def _intended_vips(self, group: HaGroup) -> tuple[IPAddress, ...]:
        """The group's VIPs in the intent (pool addresses included); its configured ones until
        the intent has it."""
        intent = self._store.get(INTENT)
        found = intent.vips_of_group(group.id) if intent is not None else None
        return found if found else group.vips

    @staticmethod
    async def _place(
        ifname: str, addresses: tuple[IPAddress, ...]
    ) -> dict[str, tuple[IPAddress, ...]]:
        networks = await trio.to_thread.run_sync(placement.interface_networks, ifname, addresses)
        return placement.place_vips(addresses, ifname, networks)

    async def _stop(self) -> None:
        now = trio.current_time()
        for group in self._groups.values():
            group.instance.stop(now)
        self.pump()  # the priority-0 resignations leave here, synchronously
        for group in self._groups.values():
            await self._release_all(group)
        log.info("ha_stopped")

    async def _release_all(self, group: _Group) -> None:
        """Remove every address the group may hold (after its instance stopped)."""
        group.owns_vips = False
        for ifname, addresses in _merged(group.placed, group.retired).items():
            try:
                await trio.to_thread.run_sync(self._addresses.remove, ifname, addresses)
            except Exception as exc:
                log.error("ha_vip_remove_failed", group=group.id, error=str(exc))

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
        sock = self._sockets.get(group.socket_key)
        if sock is None:
            return
        advert = wire.Advert(group.id, event.priority, event.interval_cs, group.vips)
        multicast = wire.VRRP_GROUP_V4 if group.local.version == 4 else wire.VRRP_GROUP_V6
        for dst in group.peers or (multicast,):
            counter = self._counter.next() if group.auth is not None else 0
            payload = wire.encode(advert, group.local, dst, auth=group.auth, counter=counter)
            if sock.send(payload, dst):
                group.sent += 1
            else:
                log.debug("ha_advert_dropped", group=group.id, dst=str(dst))

    def _state_changed(self, group: _Group, event: StateChanged) -> None:
        group.owns_vips = event.new is State.MASTER
        group.mastered += event.new is State.MASTER
        if group.owns_vips:
            self._claim(group)  # first: the failover gap ends when the VIPs are announced
        group.vips_changed.set()
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
        if group.notifier is not None and event.old.role is not event.new.role:
            group.notifier.notify(event.old.role, event.new.role)

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
                vips=group.vips,
                transitions=group.transitions,
                last_reason=group.last_reason,
                rejected=dict(group.rejected),
                received=group.received,
                sent=group.sent,
                priority_override=self._overrides.get(group.id),
                advert_gap_max_s=round(instance.advert_gap_max, 4),
            ),
        )

    # --- tasks --------------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        while True:
            await self._sleep_until_due()
            now = trio.current_time()
            for group in self._groups.values():
                timer = group.instance.get_timer()
                if timer is not None and timer <= now:
                    group.instance.handle_timer(now)
            self.pump()
            # re-armed after our own pump: only other tasks' pumps (or a deadline) wake us
            self._timer_wake = trio.Event()

    async def _sleep_until_due(self) -> None:
        """Until the earliest instance deadline, or another task's pump.

        A BACKUP's Master_Down deadline only comes due when the master has gone silent, so
        that wake-up is the start of a failover: it wakes `EARLY_WAKE_S` early and yields
        until the exact deadline (epoll rounds its timeout up to the millisecond, and a late
        takeover is a longer gap). Other deadlines (a master's own adverts) sleep plainly."""
        due = [(d, g) for g in self._groups.values() if (d := g.instance.get_timer()) is not None]
        deadline, group = min(due, key=lambda item: item[0], default=(math.inf, None))
        self._due = deadline
        failover = group is not None and group.instance.state is State.BACKUP
        wake = self._timer_wake
        with trio.move_on_at(deadline - EARLY_WAKE_S if failover else deadline):
            await wake.wait()
        while failover and not wake.is_set() and trio.current_time() < deadline:
            await trio.sleep(0)

    async def _receive_loop(self, key: tuple[str, int], sock: VrrpSocket) -> None:
        while True:
            datagram = await sock.receive()
            payload = datagram.payload
            if datagram.src == sock.local or len(payload) < wire.HEADER_LENGTH:
                continue
            group = self._groups.get(payload[1])  # groups come and go with the config
            if group is None or group.socket_key != key:
                continue
            if group.peers and datagram.src not in group.peers:
                self._reject(group, UNKNOWN_PEER, datagram.src)
                continue
            try:
                wire.check_ttl(datagram.ttl)
                advert = wire.decode(
                    payload, datagram.src, datagram.dst, auth=group.auth, replay=group.replay
                )
            except HaError as exc:
                self._reject(group, str(exc.reason), datagram.src)
                continue
            group.received += 1
            group.instance.receive_advert(advert, datagram.src, arrival(datagram))
            self.pump()

    def _reject(self, group: _Group, reason: str, src: IPAddress) -> None:
        group.reject(reason)
        self._publish_status(group)
        log.debug("ha_advert_rejected", group=group.id, src=str(src), reason=reason)

    async def _track_loop(self) -> None:
        while True:
            with trio.move_on_after(self._track_interval_s):
                await self._track_wake.wait()
            self._track_wake = trio.Event()
            await self._observe_tracks()

    async def _observe_tracks(self) -> None:
        tracked = [g for g in self._groups.values() if g.config.track]
        if not tracked:
            return
        tracks = [t for g in tracked for t in g.config.track]
        interfaces: Mapping[str, str] = {}
        if any(t.type is TrackType.INTERFACE for t in tracks):
            interfaces = oper_states(t.name for t in tracks if t.type is TrackType.INTERFACE)
        observations = observe(
            tracks,
            interfaces=interfaces,
            store=self._store,
            config=self._store.get(RUNNING_CONFIG),
            commands=self._commands,
        )
        now = trio.current_time()
        for group in tracked:
            result = tracking.evaluate(group.config.track, observations)
            instance = group.instance
            if result.fault != instance.local_fault:
                log.info(
                    "ha_track",
                    group=group.id,
                    fault=result.fault,
                    down=[f"{t.type}:{t.name}" for t in result.down],
                )
                instance.set_fault(result.fault, now)
            if result.delta != group.delta:
                log.info(
                    "ha_track",
                    group=group.id,
                    delta=result.delta,
                    down=[f"{t.type}:{t.name}" for t in result.down],
                )
                group.delta = result.delta
                instance.set_priority_adjustment(result.delta, now)
        self.pump()

    async def _join_loop(self) -> None:
        """Follow conntrack sync's `SYNC_RESYNCED`: the join gates open once it has resynced
        and close again while it is behind a peer that was down (the instances open them by
        themselves ``join_timeout_ms`` after they closed). The gate only holds preemption back:
        a node whose peer is gone still takes over when the master is."""
        async for _ in self._store.watch(SYNC_RESYNCED.name):
            value = self._store.get(SYNC_RESYNCED)
            resynced = value is True
            if resynced == self._gate_open:
                continue
            self._gate_open = resynced
            now = trio.current_time()
            for group in self._groups.values():
                if group.instance.join_gate_open != resynced:
                    group.instance.set_join_gate(resynced, now)
            log.info(
                "ha_join_gate_open" if resynced else "ha_join_gate_closed",
                reason="sync-resynced" if resynced else "sync-behind",
            )
            self.pump()

    async def _config_loop(self) -> None:
        """Apply each new ``ha`` section (`each_config`) and answer `Applied` for its
        generation: with an error, and nothing changed, when it cannot run (a group's
        interface, address or key file missing)."""
        async for generation, cfg in each_config(self._store):
            async with self._changing:
                error = await self._apply(cfg)
            self._store.publish(applied_key(SERVICE_NAME), Applied(generation, error))
            log.info("ha_config_applied", generation=generation, error=error)

    async def _apply(self, cfg: Config) -> str | None:
        """Apply ``cfg.ha`` over the running section; the error, or None when applied.
        Without an ``ha`` section there is nothing to apply: the daemon stops the service."""
        if cfg.ha is None or cfg.ha == self.ha:
            return None
        changes = reconfigure.plan(self.ha, cfg.ha)
        try:
            ready = await self._prepare_changes(changes, cfg.ha)
        except (HaError, OSError) as exc:
            log.error("ha_config_rejected", error=str(exc))
            return str(exc)
        await self._commit(changes, cfg.ha, ready)
        return None

    async def _prepare_changes(self, changes: reconfigure.HaChanges, ha: Ha) -> _Ready:
        """Everything of ``changes`` that can fail, before anything changes: the new groups
        (sources, sockets, keys, placement), the new key files and instance configs of the
        changed groups. On failure what was opened is closed again."""
        ready = _Ready()
        try:
            for group in changes.started:
                local = await self._local_of(group, ready.sockets)
                ready.groups.append(await self._prepare(group, local, ready.sockets, ha))
            for change in changes.changed:
                if change.new.auth_key_file != change.old.auth_key_file:
                    ready.keys[change.id] = await self._read_keys(change.new)
            join_timeout_s = ha.join_timeout_ms / 1000
            started = {g.id for g in changes.started}
            for group in ha.groups:
                running = self._groups.get(group.id)
                if running is not None and group.id not in started:
                    ready.instances[group.id] = self._instance_config(
                        group, running.local, join_timeout_s
                    )
        except BaseException:
            _close_all(ready.sockets, ready.groups)
            raise
        return ready

    def _instance_config(
        self, group: HaGroup, local: IPAddress, join_timeout_s: float
    ) -> InstanceConfig:
        """The election parameters of ``group``, with an operator's runtime priority."""
        config = InstanceConfig.from_group(group, local, join_gate_timeout_s=join_timeout_s)
        override = self._overrides.get(group.id)
        return config if override is None else attrs.evolve(config, priority=override)

    # --- operator actions (HaControl) ---------------------------------------------------------

    def set_priority(self, group_id: int, priority: int | None) -> bool:
        """Run ``group_id`` with ``priority`` instead of the configured one (None: back to the
        configured one); a role changes only if the priorities now say so. False: no such
        group. `HaError` for a priority outside 1-254."""
        group = self._groups.get(group_id)
        if group is None:
            return False
        previous = self._overrides.get(group_id)
        if priority is None:
            self._overrides.pop(group_id, None)
        else:
            self._overrides[group_id] = priority
        try:
            config = self._instance_config(
                group.config, group.local, self.ha.join_timeout_ms / 1000
            )
        except HaError:
            self._overrides.pop(group_id, None)
            if previous is not None:
                self._overrides[group_id] = previous
            raise
        group.instance.reconfigure(config, trio.current_time())
        log.info("ha_priority_set", group=group_id, priority=priority)
        self.pump()
        self._publish_status(group)
        return True

    def hand_off(self, group_id: int) -> bool:
        """Graceful handoff: this node's priority becomes the lowest (1, until cleared with
        `set_priority`) and a MASTER resigns at once, so a backup takes over within its Skew
        Time instead of after a failure's Master_Down_Interval. False: no such group."""
        group = self._groups.get(group_id)
        if group is None:
            return False
        self.set_priority(group_id, MIN_PRIORITY)
        group.instance.hand_off(trio.current_time())
        log.info("ha_handoff", group=group_id)
        self.pump()
        self._publish_status(group)
        return True

    async def _local_of(
        self, group: HaGroup, opened: Mapping[tuple[str, int], VrrpSocket]
    ) -> IPAddress:
        """The advert source of a new group: that of the socket it shares, else looked up."""
        family = group_family(group)
        sock = self._sockets.get((group.interface, family)) or opened.get((group.interface, family))
        if sock is not None:
            return sock.local
        sources = await trio.to_thread.run_sync(discover_sources, (group,))
        return sources.for_group(group)

    async def _commit(self, changes: reconfigure.HaChanges, ha: Ha, ready: _Ready) -> None:
        """Apply prepared ``changes``: stop the removed and rebuilt groups (resigning), change
        the others in place, start the new ones; close the sockets no group uses any more."""
        await self._add_commands(ha)  # first: the new tracks have a result when they apply
        for stopped in changes.stopped:
            await self._remove_group(self._groups[stopped.id])
        self.ha = ha
        for key, sock in ready.sockets.items():
            self._sockets[key] = sock
            self._receivers[key] = self._spawn(self._receive_loop, key, sock)
        now = trio.current_time()
        for change in changes.changed:
            self._change_group(self._groups[change.id], change, ready.keys)
        for gid, config in ready.instances.items():
            self._groups[gid].instance.reconfigure(config, now)
        for group in ready.groups:
            self._groups[group.id] = group
            self._store.publish(role_key(group.id), HaRole.INIT)
            log.info("ha_group_added", group=group.id, interface=group.config.interface)
        self._regroup()
        self._drop_commands(ha)
        await self._observe_tracks()  # the new tracks, and the new groups before they start
        now = trio.current_time()
        for group in ready.groups:
            self._start_group(group, now)
        self.pump()
        await self._close_unused_sockets()
        for change in changes.changed:
            running = self._groups[change.id]
            wanted = self._intended_vips(running.config)
            if wanted != running.vips:
                await self._change_vips(running, wanted)

    def _change_group(
        self,
        group: _Group,
        change: reconfigure.GroupChange,
        keys: Mapping[int, wire.AuthKeys | None],
    ) -> None:
        """The shell's part of an in-place change (the instance's is `reconfigure`)."""
        old, new = change.old, change.new
        group.config = new
        group.peers = new.unicast_peers
        if change.id in keys:
            group.auth = keys[change.id]
        if new.notify != old.notify:
            if group.notifier_task is not None:
                group.notifier_task.cancel()
                group.notifier_task = None
            group.notifier = Notifier(new.notify, new.id) if new.notify else None
            if group.notifier is not None:
                group.notifier_task = self._spawn(group.notifier.run)
        log.info("ha_group_changed", group=group.id, fields=list(change.fields))

    async def _remove_group(self, group: _Group) -> None:
        """Stop a group: a MASTER resigns (priority 0: a backup takes over at once, RFC 5798
        §6.4.3) and releases its VIPs; its role and status are no longer published."""
        for task in (group.task, group.notifier_task):
            if task is not None:
                await task.stop()
        group.instance.stop(trio.current_time())
        self.pump()  # the resignation leaves here, before the group is gone
        del self._groups[group.id]
        self._regroup()
        self._store.remove(group_status_key(group.id))
        self._store.remove(role_key(group.id))
        await self._release_all(group)
        group.announcer.close()
        log.info("ha_group_removed", group=group.id, interface=group.config.interface)

    async def _close_unused_sockets(self) -> None:
        used = {g.socket_key for g in self._groups.values()}
        for key in [k for k in self._sockets if k not in used]:
            await self._receivers.pop(key).stop()
            self._sockets.pop(key).close()

    async def _add_commands(self, ha: Ha) -> None:
        """Run the new ``command`` tracks of ``ha``: each checked once at once (so a group
        never sees a track without a result), then every interval; a changed interval is
        taken by the running check."""
        wanted = _command_intervals(ha)
        for name, check in self._commands.items():
            check.interval_s = wanted.get(name, check.interval_s)
        new = [CommandCheck(n, i) for n, i in wanted.items() if n not in self._commands]
        async with trio.open_nursery() as first:  # every new command once, concurrently
            for check in new:
                first.start_soon(check.check)
        for check in new:
            self._commands[check.command] = check
            self._command_tasks[check.command] = self._spawn(check.run, self._track_wake.set)

    def _drop_commands(self, ha: Ha) -> None:
        """Stop the ``command`` tracks no group of ``ha`` has any more."""
        wanted = _command_intervals(ha)
        for name in [n for n in self._commands if n not in wanted]:
            del self._commands[name]
            self._command_tasks.pop(name).cancel()

    async def _keys_loop(self) -> None:
        """After each reload, changed config or not, read the key files again: a key rotation
        needs no config change."""
        async for _ in each_reload(self._store):
            async with self._changing:
                await self._reload_keys()

    async def _reload_keys(self) -> None:
        for gid, group in list(self._groups.items()):
            path = group.config.auth_key_file
            if path is None:
                continue
            try:
                keys = await trio.to_thread.run_sync(read_auth_keys, path)
            except HaError as exc:
                log.error("ha_keys_reload_failed", group=gid, error=str(exc))
                continue
            if keys != group.auth and self._groups.get(gid) is group:
                group.auth = keys
                ids = [k.id for k in (keys.current, keys.previous) if k is not None]
                log.info("ha_keys_reloaded", group=gid, key_ids=ids)

    async def _intent_loop(self) -> None:
        """Follow the groups' VIPs in the intent (pool addresses come and go with services)."""
        async for _ in self._store.watch(INTENT.name):
            async with self._changing:
                for group in list(self._groups.values()):
                    wanted = self._intended_vips(group.config)
                    if wanted != group.vips:
                        await self._change_vips(group, wanted)

    async def _change_vips(self, group: _Group, wanted: tuple[IPAddress, ...]) -> None:
        placed = await self._place(group.config.interface, wanted)
        for ifname, addresses in placed.items():
            await trio.to_thread.run_sync(self._addresses.prepare, ifname, addresses)
        if placed.get(group.config.interface):
            group.announcer.prepare(placed[group.config.interface])
        kept = {a for addresses in placed.values() for a in addresses}
        for pending in group.retired.values():  # taken back before it was removed
            pending -= kept
        for ifname, addresses in group.placed.items():
            dropped = {a for a in addresses if a not in kept}
            if dropped:
                group.retired.setdefault(ifname, set()).update(dropped)
        log.info(
            "ha_vips_changed",
            group=group.id,
            vips=[str(v) for v in wanted],
            retired=sorted(str(a) for addresses in group.retired.values() for a in addresses),
        )
        group.vips, group.placed = wanted, placed
        group.vips_changed.set()

    def _claim(self, group: _Group) -> None:
        """On becoming MASTER, inside the pump: add the VIPs and send the first announcement
        at once, before any other task runs (the failover gap is this path). The VIP loop
        sends the remaining announcement rounds, or retries all of it if this failed."""
        started = time.perf_counter()
        try:
            added = self._add_vips(group)
            if group.announced:
                group.announcer.announce(group.announced)
        except Exception as exc:
            log.warning("ha_vips_failed", group=group.id, owns=True, error=str(exc))
            return
        group.claimed = group.mastered
        log.info(
            "ha_vips_added",
            group=group.id,
            vips=[str(v) for v in added],
            took_ms=round((time.perf_counter() - started) * 1000, 3),
            timer_late_ms=round((trio.current_time() - self._due) * 1000, 3),
        )

    def _add_vips(self, group: _Group) -> list[IPAddress]:
        # On the event loop, deliberately: one rtnetlink request on a socket kept open takes
        # about 0.2 ms, while a worker-thread round trip costs 0.5-1 ms more, on the path that
        # is the failover gap itself. Removals go to a thread.
        added: list[IPAddress] = []
        for ifname, addresses in group.placed.items():
            added += self._addresses.add(ifname, addresses)
        return added

    async def _vip_loop(self, group: _Group) -> None:
        """Make the group's VIPs follow ``group.owns_vips`` and its current VIP set; announce
        the on-link ones when taken (`_claim` did the first round). Starts from "unknown", so a
        first pass as non-MASTER removes VIPs left by a crash."""
        applied: bool | None = None
        applied_placed = group.placed
        announced = 0
        while True:
            if group.retired:
                try:
                    await self._remove_retired(group)
                except Exception as exc:
                    log.warning("ha_vips_failed", group=group.id, owns=False, error=str(exc))
                    await trio.sleep(RETRY_S)
                continue  # look again: things may have changed meanwhile
            want, placed = group.owns_vips, group.placed
            settled = want == applied and placed is applied_placed
            if settled and (not want or announced == group.mastered):
                group.vips_changed = trio.Event()
                await group.vips_changed.wait()
                continue
            try:
                if want:
                    mastered = group.mastered
                    claimed = group.claimed == mastered and placed is applied_placed
                    await self._take_vips(group, claimed=claimed)
                    announced = mastered
                else:
                    await self._release_vips(group)
            except Exception as exc:
                log.warning("ha_vips_failed", group=group.id, owns=want, error=str(exc))
                await trio.sleep(RETRY_S)
                continue
            applied, applied_placed = want, placed

    async def _remove_retired(self, group: _Group) -> None:
        """Remove the addresses dropped from the group (put back for a retry on failure)."""
        retired, group.retired = group.retired, {}
        try:
            for ifname, addresses in retired.items():
                removed = await trio.to_thread.run_sync(
                    self._addresses.remove, ifname, sorted(addresses, key=str)
                )
                if removed:
                    log.info(
                        "ha_vips_removed",
                        group=group.id,
                        dev=ifname,
                        vips=[str(v) for v in removed],
                    )
        except BaseException:
            for ifname, addresses in retired.items():
                group.retired.setdefault(ifname, set()).update(addresses)
            raise

    async def _take_vips(self, group: _Group, *, claimed: bool) -> None:
        if not claimed:
            added = self._add_vips(group)
            log.info("ha_vips_added", group=group.id, vips=[str(v) for v in added])
        if not group.announced:
            return
        for round_ in range(1 if claimed else 0, self._garp_count):
            if not group.owns_vips:
                break  # lost MASTER meanwhile: release the VIPs without delay
            if round_:
                await trio.sleep(garp.DEFAULT_SPACING_S)
            group.announcer.announce(group.announced)  # microseconds: no thread needed

    async def _release_vips(self, group: _Group) -> None:
        for ifname, addresses in group.placed.items():
            removed = await trio.to_thread.run_sync(self._addresses.remove, ifname, addresses)
            if removed:
                log.info(
                    "ha_vips_removed", group=group.id, dev=ifname, vips=[str(v) for v in removed]
                )
