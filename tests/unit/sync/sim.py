"""A virtual-time UDP network of `SyncCore`s for the tests: seeded loss, duplication, delay
(hence reordering), partitions; each node has a test shell keeping a model of its tables."""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable

from appliance.ha.wire import AuthKey, AuthKeys
from appliance.sync.core import (
    Apply,
    CoreConfig,
    Event,
    JoinDone,
    PeerAddr,
    SnapshotWanted,
    Stale,
    SyncCore,
)

KEYS = AuthKeys(AuthKey(1, b"k" * 32))


def addr(n: int) -> PeerAddr:
    return (f"10.0.0.{n}", 7946)


class Node:
    """One node: its core, its local table (what it upserts/deletes) and what the shell learnt
    from each peer by following `Apply` events (must equal the core's remote tables)."""

    def __init__(self, net: Net, n: int, epoch: int, peers: Iterable[int], **config: object):
        self.net = net
        self.n = n
        self.addr = addr(n)
        cfg = CoreConfig(node_id=n, epoch=epoch, keys=config.pop("keys", KEYS), **config)  # type: ignore[arg-type]
        self.core = SyncCore(cfg, [addr(p) for p in peers], net.now)
        self.local: dict[bytes, bytes] = {}
        self.learnt: dict[PeerAddr, dict[bytes, bytes]] = {addr(p): {} for p in peers}
        self.events: list[Event] = []
        self.pending_snapshots: list[tuple[float, PeerAddr, list[tuple[bytes, bytes]]]] = []
        self.ignore_snapshot_requests = 0  # a shell losing this many SnapshotWanted

    def upsert(self, key: bytes, value: bytes) -> None:
        self.local[key] = value
        self.core.upsert(key, value, self.net.now)

    def delete(self, key: bytes) -> None:
        self.local.pop(key, None)
        self.core.delete(key, self.net.now)

    def handle_events(self) -> None:
        while (event := self.core.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, Apply):
                table = self.learnt[event.peer]
                for key, value in event.ops:
                    if value is None:
                        table.pop(key, None)
                    else:
                        table[key] = value
            elif isinstance(event, Stale):  # the peer no longer has them: drop them here too
                for key in event.keys:
                    self.learnt[event.peer].pop(key, None)
            elif isinstance(event, SnapshotWanted) and self.ignore_snapshot_requests:
                self.ignore_snapshot_requests -= 1
            elif isinstance(event, SnapshotWanted):
                # read the table now, hand it over after the shell's read delay
                read = list(self.local.items())
                due = self.net.now + self.net.snapshot_delay
                self.pending_snapshots.append((due, event.peer, read))

    def provide_due(self) -> None:
        keep = []
        for due, peer, read in self.pending_snapshots:
            if due <= self.net.now:
                self.core.provide_snapshot(peer, read, self.net.now)
            else:
                keep.append((due, peer, read))
        self.pending_snapshots = keep

    def join_done(self) -> JoinDone | None:
        done = [e for e in self.events if isinstance(e, JoinDone)]
        assert len(done) <= 1
        return done[0] if done else None


class Net:
    def __init__(
        self,
        seed: int = 0,
        *,
        loss: float = 0.0,
        dup: float = 0.0,
        delay: tuple[float, float] = (0.0005, 0.002),
        snapshot_delay: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.loss, self.dup, self.delay = loss, dup, delay
        self.snapshot_delay = snapshot_delay
        self.now = 0.0
        self.nodes: dict[PeerAddr, Node] = {}
        self.cut: set[PeerAddr] = set()  # nodes cut off (both directions)
        self._wire: list[tuple[float, int, PeerAddr, PeerAddr, bytes]] = []
        self._n = 0
        self.sent = 0
        #: every datagram sent: (time, source, destination, bytes)
        self.captured: list[tuple[float, PeerAddr, PeerAddr, bytes]] = []

    def add(self, n: int, epoch: int, peers: Iterable[int], **config: object) -> Node:
        node = Node(self, n, epoch, peers, **config)
        self.nodes[node.addr] = node
        return node

    def __getitem__(self, n: int) -> Node:
        return self.nodes[addr(n)]

    def inject(self, src: PeerAddr, dst: PeerAddr, data: bytes, at: float | None = None) -> None:
        self._n += 1
        heapq.heappush(self._wire, (self.now if at is None else at, self._n, src, dst, data))

    def pump(self) -> None:
        """Move every node's output onto the wire and handle its events, until quiet."""
        busy = True
        while busy:
            busy = False
            for node in list(self.nodes.values()):
                node.provide_due()
                for dst, data in node.core.datagrams_to_send():
                    busy = True
                    self.sent += 1
                    self.captured.append((self.now, node.addr, dst, data))
                    if node.addr in self.cut or dst in self.cut:
                        continue
                    copies = 2 if self.rng.random() < self.dup else 1
                    for _ in range(copies):
                        if self.rng.random() < self.loss:
                            continue
                        self.inject(node.addr, dst, data, self.now + self.rng.uniform(*self.delay))
                node.handle_events()

    def next_time(self) -> float:
        times = [self._wire[0][0]] if self._wire else []
        for node in self.nodes.values():
            times.append(node.core.get_timer())
            times.extend(due for due, _, _ in node.pending_snapshots)
        return min(times)

    def run(self, until: float) -> None:
        """Advance virtual time to ``until``, delivering and firing timers in order."""
        self.pump()
        while True:
            t = self.next_time()
            if t > until:
                break
            self.now = max(self.now, t)
            while self._wire and self._wire[0][0] <= self.now:
                _, _, src, dst, data = heapq.heappop(self._wire)
                node = self.nodes.get(dst)
                if node is not None and dst not in self.cut and src not in self.cut:
                    node.core.receive_datagram(src, data, self.now)
            for node in self.nodes.values():
                if node.core.get_timer() <= self.now:
                    node.core.handle_timer(self.now)
            self.pump()
        self.now = until

    def random_ops(self, nodes: list[Node], count: int, keyspace: int, span: float) -> None:
        """``count`` random upserts/deletes spread over ``span`` seconds of virtual time."""
        step = span / count
        for i in range(count):
            node = self.rng.choice(nodes)
            key = b"key-%d" % self.rng.randrange(keyspace)
            if self.rng.random() < 0.25:
                node.delete(key)
            else:
                node.upsert(key, b"v%d-%d" % (node.n, i) * self.rng.randrange(1, 8))
            self.run(self.now + step)

    def assert_converged(self) -> None:
        for a in self.nodes.values():
            for b in self.nodes.values():
                if a is b or b.addr not in a.learnt:
                    continue
                remote = dict(a.core.remote_table(b.addr))
                assert remote == b.local, (a.n, b.n, len(remote), len(b.local))
                assert a.learnt[b.addr] == remote, (a.n, b.n)
