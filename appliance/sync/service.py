"""The conntrack sync service: the Trio shell around `SyncCore`.

* one UDP socket bound to ``sync.listen``; a receive task feeds every datagram to the core and
  a timer task sleeps until the core's next deadline;
* capture: the dataplane's connection events (`DATAPLANE_REPLICA.subscribe`): a connection
  that became established is encoded (`entries.encode`, naming its service and endpoint) and
  replicated at once, a closed one is deleted at the peers;
* apply: entries from peers are renumbered for this node (`entries.decode`) and written to the
  conntrack map, flagged remote, in a worker thread, in the peer's order;
* bulk resync: a peer's request is answered with the whole table read in a worker thread; at
  start the node asks its peers (`join`) and, once they answered (or could not), publishes
  `SYNC_RESYNCED`, which opens the HA join gate;
* events lost before sync saw them (a full subscriber queue) trigger a full push to every peer:
  never silent loss;
* status (`SYNC_STATUS`) twice a second; a reload re-reads the key file (rotation).

Every output of the core is handled in `_pump`, the one place bytes leave and events are
dispatched.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Sequence

import trio

from appliance.config.model import Config, Sync
from appliance.dataplane import DATAPLANE_STATUS
from appliance.dataplane_access import (
    DATAPLANE_REPLICA,
    ApplyOp,
    ConntrackReplica,
    DataplaneStopped,
)
from appliance.ha.keyfile import read_auth_keys
from appliance.keys import SYNC_RESYNCED, Applied, applied_key, each_config, each_reload
from appliance.state import StateStore
from appliance.structlog import get_logger
from bpf.conntrack import ConnEvent, EventType
from bpf.identity import Identity
from bpf.layout import CtKey
from bpf.records import of_pairs

from . import entries
from .core import (
    Apply,
    CoreConfig,
    JoinDone,
    PeerAddr,
    PeerDown,
    PeerRestarted,
    PeerUp,
    Rejected,
    ResyncDone,
    SnapshotWanted,
    Stale,
    SyncCore,
)
from .status import SYNC_STATUS, SyncStatus

__all__ = ["SyncService", "peer_addr"]

log = get_logger("sync")

STATUS_INTERVAL_S = 0.5
APPLY_BATCH = 16_384
RECEIVE_SIZE = 65_535
SOCKET_BUFFER = 16 << 20
#: Linux socket options the socket module does not name (asm-generic/socket.h)
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
#: marks a stale key (the peer no longer has it) among the ops queued for the apply task
STALE = b"\x00stale"


def peer_addr(address: object, port: int) -> PeerAddr:
    """A peer as the core knows it: the address in its canonical text form, and the port."""
    return (str(ipaddress.ip_address(str(address).split("%")[0])), port)


class SyncService:
    def __init__(self, sync: Sync, node_id: int, store: StateStore) -> None:
        self._sync = sync
        self._node_id = node_id
        self._store = store
        self._core: SyncCore | None = None
        self._sock: socket.socket | None = None  # non-blocking; trio waits on it to read
        self._wake = trio.Event()
        #: received changes in the peers' order, for the apply task
        self._applies: tuple[
            trio.MemorySendChannel[tuple[tuple[bytes, bytes | None], ...]],
            trio.MemoryReceiveChannel[tuple[tuple[bytes, bytes | None], ...]],
        ] = trio.open_memory_channel(1_000_000)
        self._nursery: trio.Nursery | None = None
        self._replica: ConntrackReplica | None = None
        self._resynced = False
        self._joined = False
        #: peers that went down and have not resynced to this node since: HA holds preemption
        self._behind: set[PeerAddr] = set()
        self._counts: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._snapshots_pending: set[PeerAddr] = set()
        self._coders: tuple[Identity, entries.Encoder, entries.Decoder] | None = None

    # lifecycle -------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        keys = await trio.to_thread.run_sync(read_auth_keys, self._sync.key_file)
        listen = self._sync.listen
        family = socket.AF_INET if listen.host.version == 4 else socket.AF_INET6
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _set_buffers(sock, SOCKET_BUFFER)
            sock.bind((str(listen.host), listen.port))
            self._sock = sock
            now = trio.current_time()
            peers = [peer_addr(p.host, p.port) for p in self._sync.peers]
            self._core = SyncCore(
                CoreConfig(node_id=self._node_id, epoch=time.time_ns(), keys=keys), peers, now
            )
            self._store.publish(SYNC_RESYNCED, False)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._receive_loop, sock)
                nursery.start_soon(self._timer_loop)
                nursery.start_soon(self._apply_loop)
                nursery.start_soon(self._capture_loop)
                nursery.start_soon(self._status_loop)
                nursery.start_soon(self._key_loop)
                nursery.start_soon(self._answer_loop)
                self._core.join(now)
                self._pump()
                log.info("sync_started", listen=str(listen), peers=peers)
                task_status.started()
        finally:
            sock.close()
            self._sock = self._core = self._nursery = None

    # the one place the core's output is handled --------------------------------------------

    def _pump(self) -> None:
        core, sock = self._core, self._sock
        assert core is not None and sock is not None
        for peer, data in core.datagrams_to_send():
            try:
                sock.sendto(data, peer)  # non-blocking: a full buffer loses it (retransmitted)
            except OSError as exc:
                self._counts["send_errors"] += 1
                log.debug("sync_send_failed", peer=f"{peer[0]}:{peer[1]}", error=str(exc))
        while (event := core.next_event()) is not None:
            if isinstance(event, Apply):
                self._applies[0].send_nowait(event.ops)
            elif isinstance(event, Stale):
                self._applies[0].send_nowait(tuple((k, STALE) for k in event.keys))
            elif isinstance(event, SnapshotWanted):
                self._snapshot(event.peer)
            elif isinstance(event, JoinDone):
                self._joined = True
                self._set_resynced()
                log.info(
                    "sync_joined",
                    resynced=[f"{a}:{p}" for a, p in event.resynced],
                    missed=[f"{a}:{p}" for a, p in event.missed],
                )
            elif isinstance(event, ResyncDone):
                log.info("sync_resync_received", peer=_text(event.peer), entries=event.entries)
                self._behind.discard(event.peer)
                self._set_resynced()
            elif isinstance(event, PeerUp):
                log.info("sync_peer_up", peer=_text(event.peer), node_id=event.node_id)
            elif isinstance(event, PeerDown):
                log.warning("sync_peer_down", peer=_text(event.peer))
                self._behind.add(event.peer)
                self._set_resynced()
            elif isinstance(event, PeerRestarted):
                log.info("sync_peer_restarted", peer=_text(event.peer), node_id=event.node_id)
            elif isinstance(event, Rejected):
                log.debug("sync_rejected", source=_text(event.source), reason=event.reason)
        self._wake.set()

    def _coders_for(self, identity: Identity) -> tuple[entries.Encoder, entries.Decoder]:
        """The entry coders of the dataplane's current numbering (rebuilt when it changes)."""
        if self._coders is None or self._coders[0] is not identity:
            self._coders = (identity, entries.Encoder(identity), entries.Decoder(identity))
        return self._coders[1], self._coders[2]

    def _set_resynced(self) -> None:
        """`SYNC_RESYNCED`: joined, and every peer that went down has resynced to this node
        since it came back (a peer that stays down holds nothing back: HA's gate times out)."""
        resynced = self._joined and not self._behind
        if resynced != self._resynced:
            self._resynced = resynced
            self._store.publish(SYNC_RESYNCED, resynced)
            log.info("sync_resynced" if resynced else "sync_behind", peers=sorted(self._behind))

    # tasks -----------------------------------------------------------------------------------

    async def _receive_loop(self, sock: socket.socket) -> None:
        """Read every queued datagram (up to a burst), then pump once."""
        core = self._core
        assert core is not None
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(256):
                try:
                    data, address = sock.recvfrom(RECEIVE_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:  # e.g. an ICMP error of an earlier send
                    log.debug("sync_receive_error", error=str(exc))
                    continue
                source = peer_addr(address[0], address[1])
                core.receive_datagram(source, data, trio.current_time())
            self._pump()
            await trio.sleep(0)

    async def _timer_loop(self) -> None:
        core = self._core
        assert core is not None
        while True:
            self._wake = trio.Event()
            deadline = core.get_timer()
            with trio.move_on_at(deadline):
                await self._wake.wait()
            now = trio.current_time()
            if now >= core.get_timer():
                core.handle_timer(now)
                self._pump()

    async def _capture_loop(self) -> None:
        """Follow the dataplane's connection events; resubscribe when it restarts."""
        core = self._core
        assert core is not None
        while True:
            replica = await self._store.wait_for(DATAPLANE_REPLICA, lambda r: r is not None)
            assert replica is not None
            self._replica = replica
            events = replica.subscribe()
            async with events:
                async for event in events:
                    batch = [event, *_drain(events)]
                    self._capture(replica, batch)
                    self._pump()
            self._replica = None  # the dataplane stopped: its channel closed

    def _capture(self, replica: ConntrackReplica, batch: Sequence[ConnEvent]) -> None:
        core = self._core
        assert core is not None
        now, now_ns = trio.current_time(), time.monotonic_ns()
        encode, _ = self._coders_for(replica.identity())
        established = [e for e in batch if e.type == EventType.ESTABLISHED]
        encoded, skipped = encode.records(
            *of_pairs([(e.key, e.entry) for e in established]), now_ns
        )
        self._skipped.update(skipped)
        in_order = iter(encoded)  # one per established event, in the batch's order
        for event in batch:
            if event.type == EventType.ESTABLISHED:
                pair = next(in_order)
                if pair is None:
                    continue
                core.upsert(*pair, now)
            elif event.type == EventType.CLOSED:
                core.delete(bytes(event.key)[: entries.KEY.size], now)
            else:
                continue
            self._counts["captured"] += 1

    async def _apply_loop(self) -> None:
        """Write received entries to the dataplane in the order they came, batched."""
        receive = self._applies[1]
        while True:
            batch = list(await receive.receive())
            while len(batch) < APPLY_BATCH:
                try:
                    batch.extend(receive.receive_nowait())
                except trio.WouldBlock:
                    break
            replica = self._replica or self._store.get(DATAPLANE_REPLICA)
            if replica is None:
                self._skipped["dataplane-stopped"] += len(batch)
                continue
            await self._apply(replica, batch)

    async def _apply(
        self, replica: ConntrackReplica, batch: Sequence[tuple[bytes, bytes | None]]
    ) -> None:
        _, decode = self._coders_for(replica.identity())
        skipped: Counter[str] = Counter()

        def work() -> tuple[int, int, int]:
            now_ns = time.monotonic_ns()
            ops: list[ApplyOp] = []
            stale: list[CtKey] = []
            run: list[tuple[bytes, bytes]] = []

            def decode_run() -> None:
                if run:
                    keys, values, dropped = decode.records(run, now_ns)
                    skipped.update(dropped)
                    ops.append((keys, values))
                    run.clear()

            for key, value in batch:
                if value is not None and value is not STALE:
                    run.append((key, value))
                    continue
                decode_run()
                if len(key) != entries.KEY.size:
                    if value is None:
                        skipped["malformed"] += 1
                elif value is None:
                    ops.append(key + bytes(3))
                else:
                    stale.append(CtKey.from_buffer_copy(key + bytes(3)))
            decode_run()
            report = replica.apply_records(ops)
            dropped, kept = replica.drop_stale(stale) if stale else (0, 0)
            skipped["stale-kept"] += kept
            return report.written, report.deleted + dropped, report.kept_local

        try:
            written, deleted, kept = await trio.to_thread.run_sync(work)
        except DataplaneStopped:
            self._skipped["dataplane-stopped"] += len(batch)
            return
        self._counts.update(applied=written, deleted=deleted, kept_local=kept)
        self._skipped.update(skipped)

    def _snapshot(self, peer: PeerAddr) -> None:
        if peer in self._snapshots_pending or self._nursery is None:
            return
        self._snapshots_pending.add(peer)
        self._nursery.start_soon(self._send_snapshot, peer)

    async def _send_snapshot(self, peer: PeerAddr) -> None:
        """Read the whole table (local and learnt connections) and give it to the core."""
        try:
            replica = await self._store.wait_for(DATAPLANE_REPLICA, lambda r: r is not None)
            assert replica is not None
            encode, _ = self._coders_for(replica.identity())
            skipped: Counter[str] = Counter()

            def read() -> list[tuple[bytes, bytes]]:
                encoded, dropped = encode.records(*replica.forward_records(), time.monotonic_ns())
                skipped.update(dropped)
                return [pair for pair in encoded if pair is not None]

            snapshot = await trio.to_thread.run_sync(read)
            self._skipped.update(skipped)
            core = self._core
            if core is None:
                return
            core.provide_snapshot(peer, snapshot, trio.current_time())
            self._counts["snapshots_sent"] += 1
            log.info("sync_snapshot_sent", peer=_text(peer), entries=len(snapshot))
            self._pump()
        finally:
            self._snapshots_pending.discard(peer)

    async def _status_loop(self) -> None:
        lost_seen = 0
        while True:
            lost = self._events_lost()
            core = self._core
            if lost > lost_seen and core is not None:  # events lost before we saw them
                self._counts["event_losses"] += 1
                log.warning("sync_events_lost", lost=lost - lost_seen)
                now = trio.current_time()
                for peer in [peer_addr(p.host, p.port) for p in self._sync.peers]:
                    core.request_snapshot(peer, now)  # a full push, ordered by the core
                self._pump()
                lost_seen = lost
            self._publish_status()
            await trio.sleep(STATUS_INTERVAL_S)

    def _events_lost(self) -> int:
        status = self._store.get(DATAPLANE_STATUS)
        return status.events_dropped if status is not None else 0

    def _publish_status(self) -> None:
        core = self._core
        if core is None:
            return
        listen = self._sync.listen
        self._store.publish(
            SYNC_STATUS,
            SyncStatus(
                node_id=self._node_id,
                listen=str(listen),
                resynced=self._resynced,
                peers=core.status(trio.current_time()),
                captured=self._counts["captured"],
                applied=self._counts["applied"],
                deleted=self._counts["deleted"],
                kept_local=self._counts["kept_local"],
                skipped=dict(self._skipped),
                event_losses=self._counts["event_losses"],
                snapshots_sent=self._counts["snapshots_sent"],
            ),
        )

    async def _key_loop(self) -> None:
        """After each reload read the key file again (rotation without a restart)."""
        async for cfg in each_reload(self._store):
            await self._reload_keys(cfg)

    async def _answer_loop(self) -> None:
        """Answer each configuration generation (`Applied`): a change of the sync section
        makes the daemon start this service afresh; any other change is not ours."""
        async for generation, _ in each_config(self._store):
            self._store.publish(applied_key("sync"), Applied(generation))

    async def _reload_keys(self, cfg: Config) -> None:
        if cfg.sync is None or self._core is None:
            return
        try:
            keys = await trio.to_thread.run_sync(read_auth_keys, cfg.sync.key_file)
        except Exception as exc:
            log.error("sync_keys_reload_failed", error=str(exc))
            return
        self._core.set_keys(keys)
        log.info("sync_keys_reloaded", key_ids=[k.id for k in (keys.current, keys.previous) if k])


def _set_buffers(sock: socket.socket, size: int) -> None:
    """Large socket buffers: a resync sends a full window of frames at once, and a receive
    buffer of the default size (net.core.rmem_default) drops most of it. The FORCE options
    (root) pass net.core.rmem_max; without the privilege the capped size applies."""
    for force, plain in (
        (SO_RCVBUFFORCE, socket.SO_RCVBUF),
        (SO_SNDBUFFORCE, socket.SO_SNDBUF),
    ):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, size)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)


def _drain(events: trio.MemoryReceiveChannel[ConnEvent], limit: int = 4096) -> list[ConnEvent]:
    out: list[ConnEvent] = []
    while len(out) < limit:
        try:
            out.append(events.receive_nowait())
        except trio.WouldBlock:
            break
    return out


def _text(peer: PeerAddr) -> str:
    return f"{peer[0]}:{peer[1]}"
