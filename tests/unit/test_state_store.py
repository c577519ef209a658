from __future__ import annotations

import trio
import trio.testing

from appliance.state import StateKey, StateStore

ROLE = StateKey[str]("ha/1/role")
PEERS = StateKey[int]("bgp/peers_up")


def test_publish_get_and_unchanged_values_do_not_bump_version() -> None:
    store = StateStore()
    assert store.get(ROLE) is None
    assert store.publish(ROLE, "backup")
    v = store.version
    assert not store.publish(ROLE, "backup")
    assert store.version == v
    assert store.publish(ROLE, "active")
    assert store.get(ROLE) == "active"
    assert store.snapshot("ha/") == {"ha/1/role": "active"}


def test_changes_since_lists_changed_keys_in_order() -> None:
    store = StateStore()
    store.publish(ROLE, "backup")
    v = store.version
    store.publish(PEERS, 1)
    store.publish(ROLE, "active")
    assert [(c.key, c.value) for c in store.changes_since(v)] == [
        ("bgp/peers_up", 1),
        ("ha/1/role", "active"),
    ]
    store.remove(PEERS)
    assert [(c.key, c.value) for c in store.changes_since(v, "bgp/")] == [("bgp/peers_up", None)]


async def test_wait_for_wakes_on_matching_value(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    seen: list[str | None] = []

    async def waiter() -> None:
        seen.append(await store.wait_for(ROLE, lambda r: r == "active"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        store.publish(ROLE, "backup")
        await trio.sleep(1)
        assert seen == []
        store.publish(ROLE, "active")
    assert seen == ["active"]


async def test_watch_yields_current_then_changes(autojump_clock: trio.testing.MockClock) -> None:
    store = StateStore()
    store.publish(ROLE, "init")
    batches: list[list[tuple[str, object]]] = []

    async def watcher() -> None:
        async for batch in store.watch("ha/"):
            batches.append([(c.key, c.value) for c in batch])
            if len(batches) == 2:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watcher)
        await trio.sleep(1)
        store.publish(PEERS, 3)  # outside the prefix: no batch
        await trio.sleep(1)
        store.publish(ROLE, "active")
    assert batches == [[("ha/1/role", "init")], [("ha/1/role", "active")]]
