"""Cores on a simulated lossy network converge: each node's remote table of a peer equals that
peer's local table (and the shell's model built from `Apply` events agrees)."""

from __future__ import annotations

import math
import random

import pytest

from appliance.sync.core import (
    JoinDone,
    PeerDown,
    PeerRestarted,
    PeerUp,
    Rejected,
    ResyncDone,
    SnapshotWanted,
)

from .sim import Net, Node, addr

LOSSY = dict(loss=0.15, dup=0.05, delay=(0.0005, 0.03))


def start(net: Net, ids: list[int], epoch: int = 1000, **config: object) -> list[Node]:
    nodes = [net.add(n, epoch + n, [p for p in ids if p != n], **config) for n in ids]
    for node in nodes:
        node.core.join(net.now)
    return nodes


def quiesce(net: Net, seconds: float = 15.0) -> None:
    net.run(net.now + seconds)


def only_replays_rejected(nodes: list[Node]) -> None:
    for node in nodes:
        reasons = {e.reason for e in node.events if isinstance(e, Rejected)}
        assert reasons <= {"replay", "stale-epoch"}, reasons


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("count", [2, 3])
def test_lossy_network_converges(count: int, seed: int) -> None:
    net = Net(seed, **LOSSY)  # type: ignore[arg-type]
    nodes = start(net, list(range(1, count + 1)))
    net.random_ops(nodes, 1500, keyspace=200, span=3.0)
    quiesce(net)
    net.assert_converged()
    only_replays_rejected(nodes)
    for node in nodes:
        done = node.join_done()
        assert done is not None and len(done.resynced) == count - 1 and done.missed == ()
        for status in node.core.status(net.now):
            assert status.state == "up"
            assert status.queue == status.in_flight == 0 and status.lag_s == 0.0
            assert status.retransmits > 0 and status.overflows == 0
        assert node.core.get_timer() < math.inf


def test_peer_restart_converges() -> None:
    net = Net(7, **LOSSY)  # type: ignore[arg-type]
    a, b, c = start(net, [1, 2, 3])
    net.random_ops([a, b, c], 600, keyspace=100, span=1.5)
    assert b.local
    # node 2's process dies and a new one starts with an empty table (and a higher epoch)
    b = net.add(2, 5000, [1, 3])
    b.core.join(net.now)
    net.random_ops([a, b, c], 600, keyspace=100, span=1.5)
    quiesce(net)
    net.assert_converged()
    only_replays_rejected([a, b, c])
    for other in (a, c):
        assert PeerRestarted(addr(2), 2) in other.events
        (status,) = [s for s in other.core.status(net.now) if s.peer == addr(2)]
        assert status.epoch == 5000 and status.state == "up"
    done = b.join_done()
    assert done == JoinDone((addr(1), addr(3)), ())


def test_late_joiner_gets_everything() -> None:
    net = Net(3, **LOSSY)  # type: ignore[arg-type]
    a = net.add(1, 1001, [2, 3])
    b = net.add(2, 1002, [1, 3])
    for node in (a, b):
        node.core.join(net.now)
    net.random_ops([a, b], 500, keyspace=400, span=1.0)
    net.run(4.0)
    assert a.join_done() == JoinDone((addr(2),), (addr(3),))  # 3 never answered: down
    c = net.add(3, 1003, [1, 2])
    c.core.join(net.now)
    net.run(net.now + 3.0)
    assert c.join_done() == JoinDone((addr(1), addr(2)), ())
    assert dict(c.core.remote_table(addr(1))) == a.local
    assert [e for e in c.events if isinstance(e, ResyncDone)] == [
        ResyncDone(addr(1), len(a.local)),
        ResyncDone(addr(2), len(b.local)),
    ] or sorted(e.peer for e in c.events if isinstance(e, ResyncDone)) == [addr(1), addr(2)]
    net.random_ops([a, b, c], 300, keyspace=400, span=1.0)
    quiesce(net)
    net.assert_converged()


def test_join_without_peers_and_join_timeout() -> None:
    net = Net(4)
    alone = net.add(9, 1, [])
    alone.core.join(net.now)
    assert alone.core.next_event() == JoinDone((), ())
    assert alone.core.get_timer() == math.inf
    # a peer that is up but whose shell never provides the snapshot: missed at join_timeout_s
    net = Net(4, snapshot_delay=100.0)
    a = net.add(1, 1, [2], join_timeout_s=1.5)
    net.add(2, 2, [1])
    a.core.join(net.now)
    net.run(1.4)
    assert a.join_done() is None
    net.run(1.6)
    assert a.join_done() == JoinDone((), (addr(2),))


@pytest.mark.parametrize("snapshot_delay", [0.0, 0.3])
def test_overflow_recovers_by_snapshot(snapshot_delay: float) -> None:
    net = Net(5, snapshot_delay=snapshot_delay, **LOSSY)  # type: ignore[arg-type]
    a, b = start(net, [1, 2], window=2, queue_limit=20)
    net.run(1.0)
    for i in range(300):  # a burst far beyond window + queue_limit
        a.upsert(b"k%d" % (i % 150), b"v%d" % i)
        if i % 7 == 0:
            a.delete(b"k%d" % (i % 13))
    net.random_ops([a, b], 400, keyspace=100, span=2.0)  # keeps overflowing while pushing
    quiesce(net, 30.0)
    net.assert_converged()
    (status,) = a.core.status(net.now)
    assert status.overflows >= 1
    assert status.resyncs_sent >= 2  # the join's and at least one for the overflow
    assert SnapshotWanted(addr(2)) in a.events


@pytest.mark.parametrize("queue_limit", [200_000, 30])
def test_peer_down_then_back(queue_limit: int) -> None:
    net = Net(6, **LOSSY)  # type: ignore[arg-type]
    a, b, c = start(net, [1, 2, 3], queue_limit=queue_limit)
    net.random_ops([a, b, c], 300, keyspace=100, span=1.0)
    net.run(net.now + 2.0)
    net.assert_converged()
    held = dict(a.core.remote_table(c.addr))
    net.cut.add(c.addr)
    net.random_ops([a, b, c], 400, keyspace=100, span=4.0)
    assert PeerDown(c.addr) in a.events and PeerDown(a.addr) in c.events
    assert dict(a.core.remote_table(c.addr)) == held  # kept while down
    (status,) = [s for s in a.core.status(net.now) if s.peer == c.addr]
    assert status.state == "down" and status.lag_s > 1.0
    done_before = [e for e in a.events if isinstance(e, ResyncDone) and e.peer == c.addr]
    net.cut.clear()
    net.random_ops([a, b, c], 200, keyspace=100, span=1.0)
    quiesce(net)
    net.assert_converged()
    assert a.events.count(PeerUp(c.addr, 3)) == 2
    # back after being down, c was asked for a resync: its end tells a it caught up again
    done_after = [e for e in a.events if isinstance(e, ResyncDone) and e.peer == c.addr]
    assert len(done_after) > len(done_before)
    if queue_limit == 30:
        assert any(s.overflows for s in a.core.status(net.now))


def test_snapshot_restarted_mid_push() -> None:
    net = Net(8, delay=(0.001, 0.001))
    a, b = start(net, [1, 2], window=4)
    for i in range(3000):
        a.upsert(b"key-%d" % i, b"value-%d" % i)
    net.run(net.now + 5.0)
    net.assert_converged()
    a.core.provide_snapshot(b.addr, list(a.local.items()), net.now)
    net.run(net.now + 0.02)  # part of the push is through
    for i in range(0, 3000, 2):
        a.local.pop(b"key-%d" % i)  # gone without a delete op: only the new snapshot says so
    a.core.provide_snapshot(b.addr, list(a.local.items()), net.now)
    net.run(net.now + 5.0)
    net.assert_converged()
    assert b.events.count(ResyncDone(a.addr, 1500)) == 1


@pytest.mark.parametrize("seed", range(12))
def test_chaos(seed: int) -> None:
    """Random network, window, queue limit and shell delay; partitions, heals and restarts
    (also during a partition and while a snapshot is awaited) between bursts of ops."""
    r = random.Random(seed)
    net = Net(
        seed,
        loss=r.choice([0.0, 0.1, 0.3]),
        dup=r.choice([0.0, 0.1]),
        delay=(0.0005, r.choice([0.002, 0.05, 0.3])),
        snapshot_delay=r.choice([0.0, 0.05, 0.5, 2.0]),
    )
    config = dict(window=r.choice([1, 3, 512]), queue_limit=r.choice([5, 50, 200_000]))
    ids = [1, 2, 3][: r.choice([2, 3])]
    nodes = {node.n: node for node in start(net, ids, **config)}
    epoch = 5000
    for _ in range(6):
        net.random_ops(list(nodes.values()), 100, keyspace=40, span=r.choice([0.3, 1.0, 3.0]))
        action, victim = r.random(), r.choice(ids)
        if action < 0.25:
            net.cut.add(addr(victim))
        elif action < 0.5:
            net.cut.clear()
        elif action < 0.75:
            epoch += 1
            node = net.add(victim, epoch, [p for p in ids if p != victim], **config)
            node.core.join(net.now)
            nodes[victim] = node
    net.cut.clear()
    quiesce(net, 60.0)
    net.assert_converged()


def test_a_peer_back_from_down_is_asked_for_a_resync() -> None:
    """Even with nothing queued for anyone meanwhile, a node hearing a peer again after it was
    down gets a resync from it: the shell learns it caught up (`ResyncDone`)."""
    net = Net(9)
    a, b = start(net, [1, 2])
    b.upsert(b"k", b"v")
    quiesce(net)
    before = [e for e in a.events if isinstance(e, ResyncDone) and e.peer == b.addr]
    net.cut.add(b.addr)
    net.run(net.now + 5.0)
    assert PeerDown(b.addr) in a.events
    net.cut.clear()
    quiesce(net)
    after = [e for e in a.events if isinstance(e, ResyncDone) and e.peer == b.addr]
    assert len(after) == len(before) + 1 and after[-1].entries == 1
    net.assert_converged()
