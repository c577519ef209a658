"""`HaService` follows config generations, two nodes on a simulated segment, on trio's
MockClock: the real service and VRRP core, with the raw socket, the address editor, the
announcer, the interface lookups and link states replaced by in-memory fakes (nothing touches
the host's network).

Checked: `Applied` for each generation (an error and no change when a group cannot run), no
role change for non-decisive changes, takeover when the new priorities (or track weights) say
so, a removed group's priority-0 resignation (the backup takes over after its Skew_Time, not a
Master_Down_Interval) and its status leaving the store, a group added back preempting again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
import trio
import trio.testing

from appliance.config import Config, load_config
from appliance.config.model import Ha, HaGroup, Track, TrackType
from appliance.config.values import IPAddress, IPNetwork
from appliance.ha import garp, placement, service, vips
from appliance.ha.instance import State, master_down_interval, skew_time
from appliance.ha.service import HaService, Sources
from appliance.ha.status import GroupStatus, group_status_key
from appliance.ha.transport import Datagram
from appliance.ha.wire import Advert, decode
from appliance.intent import role_key
from appliance.keys import CONFIG_GENERATION, RUNNING_CONFIG, Applied, applied_key
from appliance.state import StateStore

T = TypeVar("T")
EXAMPLES = Path(__file__).parents[3] / "examples"
LINK = ipaddress.IPv4Network("192.0.2.0/24")
ADDRESSES = {
    "node1": ipaddress.IPv4Address("192.0.2.1"),
    "node2": ipaddress.IPv4Address("192.0.2.2"),
}
VIP = {gid: ipaddress.IPv4Address(f"192.0.2.{99 + gid}") for gid in (1, 2, 3)}
INTERFACES = {"eth0", "lo"}
DOWN_LINK = "eth-down"  # a tracked interface whose link is down
INTERVAL_MS = 1000


# --- fakes --------------------------------------------------------------------------------------


class Segment:
    """The shared link: every advert sent is logged (virtual time, sender, decoded) and handed
    to the other nodes' sockets on the same interface."""

    def __init__(self) -> None:
        self.sockets: list[FakeSocket] = []
        self.log: list[tuple[float, IPAddress, Advert]] = []

    def deliver(self, sender: FakeSocket, payload: bytes, dst: IPAddress) -> None:
        self.log.append((trio.current_time(), sender.local, decode(payload, sender.local, dst)))
        for sock in self.sockets:
            if sock is not sender and not sock.closed and sock.ifname == sender.ifname:
                sock.inbox.send_nowait(Datagram(sender.local, dst, 255, payload))

    def adverts(self, src: IPAddress, since: float = 0.0) -> list[tuple[float, int]]:
        return [(t, a.priority) for t, s, a in self.log if s == src and t >= since]


class FakeSocket:
    """`VrrpSocket`'s interface on the `Segment` (``segment`` set per test)."""

    segment: Segment

    def __init__(self, ifname: str, local: IPAddress) -> None:
        self.ifname, self.local, self.closed = ifname, local, False
        self.inbox, self._receive = trio.open_memory_channel[Datagram](1000)
        self.segment.sockets.append(self)

    @classmethod
    def open(cls, ifname: str, local: IPAddress) -> FakeSocket:
        if ifname not in INTERFACES:
            raise OSError(19, f"no interface {ifname}")
        return cls(ifname, local)

    def send(self, payload: bytes, dst: IPAddress) -> bool:
        self.segment.deliver(self, payload, dst)
        return True

    async def receive(self) -> Datagram:
        return await self._receive.receive()

    def close(self) -> None:
        self.closed = True


class FakeEditor:
    """`vips.AddressEditor`: the addresses a node holds, by interface."""

    def __init__(self) -> None:
        self.held: dict[str, set[IPAddress]] = {}

    def prepare(self, ifname: str, addresses: Iterable[IPAddress]) -> None:
        if ifname not in INTERFACES:
            raise OSError(19, f"no interface {ifname}")

    def add(self, ifname: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
        held = self.held.setdefault(ifname, set())
        added = [a for a in addresses if a not in held]
        held.update(added)
        return added

    def remove(self, ifname: str, addresses: Iterable[IPAddress]) -> list[IPAddress]:
        held = self.held.setdefault(ifname, set())
        removed = [a for a in addresses if a in held]
        held.difference_update(removed)
        return removed

    def close(self) -> None:
        pass


class FakeAnnouncer:
    def __init__(self, ifname: str) -> None:
        self.ifname = ifname

    def prepare(self, addresses: Iterable[IPAddress]) -> None:
        pass

    def announce(self, addresses: Iterable[IPAddress]) -> int:
        return len(tuple(addresses))

    def close(self) -> None:
        pass


def _networks(ifname: str, exclude: Iterable[IPAddress] = ()) -> list[IPNetwork]:
    return [LINK] if ifname == "eth0" else []


def _oper_states(names: Iterable[str]) -> dict[str, str]:
    return {name: "down" if name == DOWN_LINK else "up" for name in names}


async def _inline(fn: Callable[..., T], *args: Any, **_: Any) -> T:
    """`trio.to_thread.run_sync` for the fakes, which never block: in the task, so that the
    MockClock never jumps while a "thread" still works (the tests are deterministic)."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


@pytest.fixture
def segment(monkeypatch: pytest.MonkeyPatch) -> Segment:
    seg = Segment()
    monkeypatch.setattr(trio.to_thread, "run_sync", _inline)
    monkeypatch.setattr(FakeSocket, "segment", seg, raising=False)
    monkeypatch.setattr(service, "VrrpSocket", FakeSocket)
    monkeypatch.setattr(service, "EARLY_WAKE_S", 0.0)  # no busy wait: the clock jumps
    monkeypatch.setattr(service, "oper_states", _oper_states)
    monkeypatch.setattr(service, "discover_sources", lambda groups: Sources())
    monkeypatch.setattr(vips, "AddressEditor", FakeEditor)
    monkeypatch.setattr(garp, "Announcer", FakeAnnouncer)
    monkeypatch.setattr(placement, "interface_networks", _networks)
    return seg


# --- nodes ----------------------------------------------------------------------------------------


def group(gid: int, priority: int, **changes: Any) -> HaGroup:
    base = HaGroup(
        id=gid,
        interface="eth0",
        vips=(VIP[gid],),
        priority=priority,
        advert_interval_ms=INTERVAL_MS,
    )
    return attrs.evolve(base, **changes)


@attrs.define
class Node:
    name: str
    store: StateStore
    service: HaService
    generation: int = 1

    @property
    def address(self) -> IPAddress:
        return ADDRESSES[self.name]

    @property
    def config(self) -> Config:
        return self.store.require(RUNNING_CONFIG)

    def state(self, gid: int) -> State:
        return self.service.groups[gid].state

    def holds(self, gid: int) -> bool:
        editor = self.service._addresses
        assert isinstance(editor, FakeEditor)
        return VIP[gid] in editor.held.get("eth0", set())

    def transitions(self, gid: int) -> int:
        status = self.store.get(group_status_key(gid))
        assert status is not None
        return status.transitions

    async def reload(self, groups: Sequence[HaGroup]) -> Applied:
        """A new generation with these groups; HA's answer to it."""
        assert self.config.ha is not None
        cfg = attrs.evolve(self.config, ha=attrs.evolve(self.config.ha, groups=tuple(groups)))
        self.generation += 1
        self.store.publish(RUNNING_CONFIG, cfg)
        self.store.publish(CONFIG_GENERATION, self.generation)
        return await self.applied(self.generation)

    async def applied(self, generation: int) -> Applied:
        key = applied_key("ha")
        answer = await self.store.wait_for(
            key, lambda a: a is not None and a.generation >= generation
        )
        assert answer is not None and answer.generation == generation
        return answer


def _base_config() -> Config:
    return load_config(EXAMPLES / "scenario1-l2-node1.yaml")


async def _start(nursery: trio.Nursery, name: str, groups: Sequence[HaGroup]) -> Node:
    ha = Ha(groups=tuple(groups))
    store = StateStore()
    store.publish(RUNNING_CONFIG, attrs.evolve(_base_config(), ha=ha))
    store.publish(CONFIG_GENERATION, 1)
    svc = HaService(ha, store, Sources(ipv4={"eth0": ADDRESSES[name]}), garp_count=1)
    await nursery.start(svc.run)
    node = Node(name, store, svc)
    await node.applied(1)
    return node


@pytest.fixture
async def pair(
    segment: Segment, autojump_clock: trio.testing.MockClock
) -> AsyncIterator[tuple[Node, Node]]:
    """node1 (150) MASTER and node2 (100) BACKUP of groups 1 and 2, after 10 s (the tests
    ask for ``autojump_clock`` themselves: pytest-trio picks the clock from the test's own
    arguments)."""
    async with trio.open_nursery() as nursery:
        node1 = await _start(nursery, "node1", [group(1, 150), group(2, 150)])
        node2 = await _start(nursery, "node2", [group(1, 100), group(2, 100)])
        await trio.sleep(10)
        for gid in (1, 2):
            assert (node1.state(gid), node2.state(gid)) == (State.MASTER, State.BACKUP)
            assert node1.holds(gid) and not node2.holds(gid)
        yield node1, node2
        nursery.cancel_scope.cancel()


# --- tests ------------------------------------------------------------------------------


async def test_non_decisive_changes_keep_roles(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node], segment: Segment
) -> None:
    node1, node2 = pair
    counts = [(n, gid, n.transitions(gid)) for n in pair for gid in (1, 2)]
    for node, priority in ((node1, 120), (node2, 110)):  # still node1 above node2
        changed = [group(1, priority, advert_interval_ms=300), group(2, priority + 1)]
        assert await node.reload(changed) == Applied(node.generation)
    assert await node2.reload([group(1, 120, advert_interval_ms=300), group(2, 101)]) == Applied(3)
    changed_at = trio.current_time()
    await trio.sleep(30)
    for node, gid, count in counts:
        assert node.transitions(gid) == count, (node.name, gid)
    assert node1.holds(1) and node1.holds(2) and not node2.holds(1)
    # node1 advertised its new priority at once, then every 300 ms
    sent = segment.adverts(node1.address, changed_at - 1)
    assert {p for _, p in sent} >= {120} and len([t for t, _ in sent if t >= changed_at]) > 90
    status = node2.store.get(group_status_key(1))
    assert status is not None and status.master_address == node1.address
    assert status.configured_priority == status.priority == 120  # a tie: no preemption


async def test_a_backup_raised_above_the_master_takes_over(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node]
) -> None:
    node1, node2 = pair
    assert await node2.reload([group(1, 200), group(2, 100)]) == Applied(2)
    raised = trio.current_time()
    await trio.sleep(master_down_interval(200, 100) + 0.1)
    assert (node1.state(1), node2.state(1)) == (State.BACKUP, State.MASTER)
    assert node2.holds(1) and not node1.holds(1)
    assert (node1.state(2), node2.state(2)) == (State.MASTER, State.BACKUP)  # untouched
    assert trio.current_time() - raised < 4


async def test_a_track_weight_change_applies_in_place(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node]
) -> None:
    node1, node2 = pair
    light = Track(TrackType.INTERFACE, DOWN_LINK, weight=-10)
    assert await node1.reload([group(1, 150, track=(light,)), group(2, 150)]) == Applied(2)
    await trio.sleep(10)
    assert node1.service.groups[1].priority == 140 and node1.state(1) is State.MASTER
    assert node1.transitions(1) == 2  # INIT → BACKUP → MASTER, nothing since
    heavy = attrs.evolve(light, weight=-60)
    assert await node1.reload([group(1, 150, track=(heavy,)), group(2, 150)]) == Applied(3)
    await trio.sleep(10)
    assert node1.service.groups[1].priority == 90
    assert (node1.state(1), node2.state(1)) == (State.BACKUP, State.MASTER)


async def test_a_removed_group_resigns_and_returns_when_added_back(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node], segment: Segment
) -> None:
    node1, node2 = pair
    assert await node1.reload([group(2, 150)]) == Applied(2)
    removed = trio.current_time()
    assert segment.log[-1][1:] == (node1.address, Advert(1, 0, 100, (VIP[1],)))  # priority 0
    assert 1 not in node1.service.groups and not node1.holds(1)
    assert node1.store.get(group_status_key(1)) is None and node1.store.get(role_key(1)) is None
    await trio.sleep(skew_time(100, 100) + 0.01)  # a Skew_Time, not a Master_Down_Interval
    assert node2.state(1) is State.MASTER and node2.holds(1)
    assert segment.adverts(node2.address, removed)[0][1] == 100
    assert node1.state(2) is State.MASTER and node1.transitions(2) == 2  # untouched

    assert await node1.reload([group(2, 150), group(1, 150)]) == Applied(3)
    status = node1.store.get(group_status_key(1))
    assert isinstance(status, GroupStatus) and status.state == "backup"
    await trio.sleep(master_down_interval(150, 100) + 1)
    assert (node1.state(1), node2.state(1)) == (State.MASTER, State.BACKUP)  # preempted
    assert node1.holds(1) and not node2.holds(1)


async def test_a_group_that_cannot_run_is_answered_with_an_error(
    autojump_clock: trio.testing.MockClock, pair: tuple[Node, Node]
) -> None:
    node1, node2 = pair
    moved = [group(1, 150, interface="eth9"), group(2, 150), group(3, 150)]
    answer = await node1.reload(moved)
    assert answer.generation == 2 and answer.error and "eth9" in answer.error
    assert sorted(node1.service.groups) == [1, 2]  # nothing changed, group 3 not added either
    assert node1.service.ha.groups[0].interface == "eth0"
    await trio.sleep(10)
    assert node1.state(1) is State.MASTER and node1.transitions(1) == 2
    # the committer restores the previous config as a new generation: nothing to do
    assert await node1.reload([group(1, 150), group(2, 150)]) == Applied(3)
    assert node2.state(1) is State.BACKUP
