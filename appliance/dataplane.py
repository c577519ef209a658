"""The dataplane service: loads the eBPF program, attaches it, keeps its maps equal to the
intent, ages connections out and publishes what it sees.

* load (compile, adopt pinned maps) in a worker thread; attach to the interfaces that
  ``interfaces.include``/``exclude`` select, and again whenever interfaces appear, change or
  stop being selected (a one-second poll);
* reconcile the services of the node's intent (`appliance.intent`: VIPs explicit or from a
  pool, endpoints active while healthy) at start and whenever they change;
* `Conntrack.collect_expired` every few seconds; ring-buffer events polled in a worker thread
  and handed to subscribers (`subscribe`);
* status (`DATAPLANE_STATUS`): attached interfaces, adoption, services with ids, slots,
  endpoints and counters, the connection count.

Every bcc and netlink call runs in a worker thread, serialised by one lock (the event poll
excepted: it only reads the ring buffer). Programs stay attached and maps pinned when the
service stops: forwarding outlives the daemon.
"""

from __future__ import annotations

import ctypes
import ipaddress
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from bpf.conntrack import ConnEvent, Conntrack
from bpf.identity import Identity
from bpf.layout import LAYOUT_VERSION, SETTINGS_EVENTS, Settings
from bpf.loader import PIN_ROOT, Dataplane, LoadResult, interface_addresses, link_indexes
from bpf.model import services_from_intent, skipped_services
from bpf.programmer import Programmer, ReconcileReport, ServiceStatus
from bpf.source import LB_SOURCE

from . import boot
from .config import Config
from .dataplane_access import (
    LockedReplica,
    publish_conntrack,
    publish_replica,
    withdraw_conntrack,
    withdraw_replica,
)
from .intent import INTENT, NodeIntent
from .keys import RUNNING_CONFIG, Applied, applied_key
from .state import StateKey, StateStore
from .structlog import get_logger

__all__ = ["DATAPLANE_STATUS", "DataplaneService", "DataplaneStatus"]

log = get_logger("dataplane")

T = TypeVar("T")


@attrs.frozen
class DataplaneStatus:
    node: str
    adopted: bool
    layout_reset: bool
    #: (interface, hooks) where our program is attached
    attached: tuple[tuple[str, tuple[str, ...]], ...]
    services: tuple[ServiceStatus, ...]
    connections: int
    events: int
    events_dropped: int
    #: services the IPv4-only dataplane cannot program, and reconcile errors
    skipped: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


DATAPLANE_STATUS = StateKey[DataplaneStatus]("dataplane/status")


def intent_vips(
    cfg: Config, intent: NodeIntent | None
) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every VIP (explicit, from a pool, or an HA group's) and floating source the node may
    hold: never taken as an interface's own (one-arm SNAT) address."""
    vips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {
        s.source for s in cfg.services if s.source is not None
    }
    if intent is not None:
        vips.update(s.vip for s in intent.services if s.vip is not None)
        vips.update(v for _, group in intent.group_vips for v in group)
    return vips


class DataplaneService:
    def __init__(
        self,
        store: StateStore,
        node_name: str,
        node_id: int,
        *,
        source: Path = LB_SOURCE,
        pin_root: Path = PIN_ROOT,
        netns: str | None = None,
        link_poll_s: float = 1.0,
        gc_interval_s: float = 10.0,
        status_interval_s: float = 2.0,
        event_poll_ms: int = 200,
    ) -> None:
        self._store = store
        self._node = node_name
        self._node_id = node_id
        self._source = source
        self._pin_root = pin_root
        self._netns = netns
        self._link_poll_s = link_poll_s
        self._gc_interval_s = gc_interval_s
        self._status_interval_s = status_interval_s
        self._event_poll_ms = event_poll_ms
        self._lock = threading.Lock()
        self._subscribers: list[trio.MemorySendChannel[ConnEvent]] = []
        self._subscribed = trio.Event()
        self.dataplane: Dataplane | None = None
        self.conntrack: Conntrack | None = None
        self.programmer: Programmer | None = None
        self._identity = Identity()
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._attached: dict[str, int] = {}  # ifname -> ifindex attached to
        self._egress = False
        self._events = 0
        self._dropped = 0
        self._skipped: tuple[str, ...] = ()
        self._errors: tuple[str, ...] = ()
        self._last_report: ReconcileReport | None = None

    # public --------------------------------------------------------------------------------

    def subscribe(self, max_buffer: int = 4096) -> trio.MemoryReceiveChannel[ConnEvent]:
        """A channel of connection events (new / established / closed). A subscriber that
        does not keep up loses events (counted in the status), it never slows the poll."""
        send, receive = trio.open_memory_channel[ConnEvent](max_buffer)
        self._subscribers.append(send)
        self._subscribed.set()
        return receive

    @property
    def load_result(self) -> LoadResult | None:
        return self.dataplane.result if self.dataplane is not None else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._reset_counters()
        dataplane = await trio.to_thread.run_sync(self._load)
        try:
            self.dataplane = dataplane
            self.programmer = await self._locked(Programmer, dataplane.maps, self._node_id)
            self.conntrack = Conntrack(dataplane.maps, dataplane)
            self._identity = self.programmer.identity()  # adopted from the pinned maps
            publish_conntrack(self._store, self.conntrack, self._lock)
            publish_replica(
                self._store,
                LockedReplica(self.conntrack, self._lock, lambda: self._identity, self.subscribe),
            )
            cfg = self._store.require(RUNNING_CONFIG)
            # the intent controller starts first; wait for it rather than depend on the order
            intent = await self._store.wait_for(INTENT, lambda value: value is not None)
            assert intent is not None
            await self._apply_intent(intent)
            await self._sync_links(cfg)
            await self._publish_status()
            self._answer(intent.generation)
            log.info("dataplane_ready", node=self._node)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch, cfg, intent)
                nursery.start_soon(self._every, self._link_poll_s, self._sync_links_current)
                nursery.start_soon(self._every, self._gc_interval_s, self._collect)
                nursery.start_soon(self._every, self._status_interval_s, self._publish_status)
                nursery.start_soon(self._poll_events)
                task_status.started()
        finally:
            with trio.CancelScope(shield=True):
                await withdraw_replica(self._store)
                await withdraw_conntrack(self._store)
                await trio.to_thread.run_sync(dataplane.close)
            self.dataplane = self.programmer = self.conntrack = None

    # helpers -------------------------------------------------------------------------------

    def _load(self) -> Dataplane:
        return Dataplane.load(
            self._node, self._node_id, source=self._source, pin_root=self._pin_root
        )

    async def _locked(self, fn: Callable[..., T], *args: object) -> T:
        def call() -> T:
            with self._lock:
                return fn(*args)

        return await trio.to_thread.run_sync(call)

    @staticmethod
    async def _every(interval: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await trio.sleep(interval)
            await action()

    async def _watch(self, applied_cfg: Config, applied: NodeIntent) -> None:
        """Follow the intent's services (config changes, pool addresses, endpoint health: an
        endpoint probed down gets no new connections) and the config's interfaces."""
        seen = self._store.version
        while True:
            # look before waiting: a change published before this task first ran counts too
            cfg = self._store.require(RUNNING_CONFIG)
            intent = self._store.require(INTENT)
            if intent.services != applied.services:
                await self._apply_intent(intent)
            if cfg is not applied_cfg:
                await self._sync_links(cfg)
            if intent.generation != applied.generation:
                self._answer(intent.generation)
            applied, applied_cfg = intent, cfg
            seen = await self._store.wait_changed(seen)

    def _answer(self, generation: int) -> None:
        """Tell the committer this configuration is programmed (`Applied`): with the
        reconcile's errors if services could not be programmed."""
        report = self._last_report
        error = "; ".join(report.errors) if report is not None and report.errors else None
        self._store.publish(applied_key("dataplane"), Applied(generation, error))

    async def _apply_intent(self, intent: NodeIntent) -> None:
        assert self.programmer is not None
        skipped = skipped_services(intent)
        if skipped != self._skipped and skipped:
            log.warning("dataplane_services_skipped", services=list(skipped), reason="ipv6")
        self._skipped = skipped
        programmer = self.programmer

        def reconcile() -> tuple[ReconcileReport, Identity]:
            return programmer.reconcile(services_from_intent(intent)), programmer.identity()

        report, self._identity = await self._locked(reconcile)
        self._errors = report.errors
        self._last_report = report

    async def _sync_links_current(self) -> None:
        await self._sync_links(self._store.require(RUNNING_CONFIG))

    async def _sync_links(self, cfg: Config) -> None:
        """Attach where a selected interface appeared or was recreated, detach where one is no
        longer selected, and refresh the one-arm source addresses."""
        assert self.dataplane is not None and self.programmer is not None
        dataplane, programmer = self.dataplane, self.programmer
        interfaces = cfg.interfaces
        links = await self._locked(lambda: link_indexes(netns=self._netns))
        chosen = set(boot.selected_interfaces(links, interfaces))
        selected = {name: index for name, index in links.items() if name in chosen}
        egress = interfaces.egress_hooks
        stale = [n for n in self._attached if n not in selected]
        todo = [
            n for n, i in selected.items() if self._attached.get(n) != i or egress != self._egress
        ]
        if stale:
            gone = [n for n in stale if n in links]
            if gone:
                await self._locked(lambda: dataplane.detach(gone, netns=self._netns))
            for name in stale:
                del self._attached[name]
            log.info("dataplane_detached", interfaces=stale)
        if todo:
            done = await self._locked(lambda: dataplane.attach(todo, egress, netns=self._netns))
            self._attached.update({n: selected[n] for n in done})
            log.info("dataplane_attached", interfaces=done, egress=egress)
        self._egress = egress
        vips = intent_vips(cfg, self._store.get(INTENT))
        addresses = await self._locked(
            lambda: interface_addresses(selected, vips, netns=self._netns)
        )
        await self._locked(programmer.reconcile_ifaddrs, addresses)

    async def _collect(self) -> None:
        assert self.conntrack is not None
        # the scan runs unlocked; the lock is held per expired connection only, so writers
        # (conntrack sync, the programmer) never wait for a scan of the whole table
        removed = await trio.to_thread.run_sync(self.conntrack.collect_expired, None, self._lock)
        if removed:
            log.debug("conntrack_expired", removed=removed)

    async def _set_events(self, on: bool) -> None:
        """Switch the program's connection events on or off (``SETTINGS_EVENTS``): each costs a
        ring-buffer record per connection change and Python work to read, so they flow only
        while someone (conntrack sync) subscribes."""
        assert self.dataplane is not None
        settings = self.dataplane.maps.settings

        def flip() -> None:
            key = ctypes.c_uint32(0)
            value = settings.lookup(key) or Settings(version=LAYOUT_VERSION, node_id=self._node_id)
            flags = value.flags & ~SETTINGS_EVENTS
            value.flags = flags | SETTINGS_EVENTS if on else flags
            settings.update(key, value)

        await self._locked(flip)
        log.info("dataplane_events", enabled=on)

    async def _poll_events(self) -> None:
        assert self.conntrack is not None
        conntrack = self.conntrack
        await self._set_events(False)  # until someone subscribes (also after a restart)
        await self._subscribed.wait()
        await self._set_events(True)
        pending: list[ConnEvent] = []
        await trio.to_thread.run_sync(conntrack.open_events, pending.append)
        while True:
            # not abandoned on cancel: the poll ends within event_poll_ms, before close
            await trio.to_thread.run_sync(conntrack.poll_events, self._event_poll_ms)
            batch, pending[:] = list(pending), []
            self._events += len(batch)
            for event in batch:
                for channel in list(self._subscribers):
                    try:
                        channel.send_nowait(event)
                    except trio.WouldBlock:
                        self._dropped += 1
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        self._subscribers.remove(channel)
            await trio.sleep(0)

    async def _publish_status(self) -> None:
        assert self.programmer is not None and self.conntrack is not None
        assert self.dataplane is not None
        services = await self._locked(self.programmer.status)
        # counted by the last collection pass: a scan of the whole table per status would cost
        # more CPU than the rest of the daemon under a high connection rate
        connections = self.conntrack.live
        if connections is None:
            await self._collect()
            connections = self.conntrack.live or 0
        result = self.dataplane.result
        hooks = ("ingress", "egress") if self._egress else ("ingress",)
        status = DataplaneStatus(
            node=self._node,
            adopted=result.adopted,
            layout_reset=result.layout_reset,
            attached=tuple((name, hooks) for name in sorted(self._attached)),
            services=services,
            connections=connections,
            events=self._events,
            events_dropped=self._dropped,
            skipped=self._skipped,
            errors=self._errors,
        )
        self._store.publish(DATAPLANE_STATUS, status)
