"""The intent controller: recomputes on its inputs, keeps the VIP pool allocation in the state
directory and hands it to the intent."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path

import trio

from appliance.config import Config, parse_config
from appliance.controller import ENDPOINT_HEALTH, POOL_ALLOCATION, IntentController
from appliance.intent import INTENT, HaRole, NodeIntent, role_key
from appliance.keys import RUNNING_CONFIG
from appliance.state import StateStore

CONFIG = """
node: {name: n1, id: 1}
vip_pools:
  - {name: lab, cidr: 198.51.100.0/29}
services:
  - {name: web, pool: lab, port: 80, endpoints: [{address: 192.168.80.101}]}
  - {name: dns, pool: lab, port: 53, protocol: udp, endpoints: [{address: 192.168.80.102}]}
ha:
  groups:
    - {id: 1, interface: eth0, vips: [192.168.80.200], pools: [lab]}
bgp:
  asn: 65100
  router_id: 192.168.80.252
  peers: [{address: 192.168.80.254, asn: 65101}]
"""
IP = ipaddress.ip_address
EP = "192.168.80.101"


def _cfg(text: str = CONFIG) -> Config:
    return parse_config(text)


async def _run(store: StateStore, state_dir: Path | None, nursery: trio.Nursery) -> None:
    await nursery.start(IntentController(store, state_dir).run)


async def _until(store: StateStore, done: Callable[[NodeIntent], bool]) -> NodeIntent:
    """The intent once ``done`` holds (the allocation is saved in a worker thread)."""
    with trio.fail_after(5):
        while not done(intent := store.require(INTENT)):
            await trio.sleep(0.01)
    return intent


def _vips(intent: NodeIntent) -> dict[str, str | None]:
    return {s.name: str(s.vip) if s.vip else None for s in intent.services}


async def test_pool_addresses_are_saved_and_kept_across_a_restart(tmp_path: Path) -> None:
    store = StateStore()
    store.publish(RUNNING_CONFIG, _cfg())
    async with trio.open_nursery() as nursery:
        await _run(store, tmp_path, nursery)
        first = _vips(store.require(INTENT))
        nursery.cancel_scope.cancel()
    saved = tmp_path / "n1" / "pools.json"
    assert json.loads(saved.read_text())["addresses"] == first
    assert all(first.values())
    # a restart reads what was saved: move web elsewhere in the file and it stays there
    other = next(f"198.51.100.{i}" for i in range(1, 7) if f"198.51.100.{i}" not in first.values())
    saved.write_text(json.dumps({"addresses": {**first, "web": other}}))
    store = StateStore()
    store.publish(RUNNING_CONFIG, _cfg())
    async with trio.open_nursery() as nursery:
        await _run(store, tmp_path, nursery)
        intent = store.require(INTENT)
        assert _vips(intent) == {**first, "web": other}
        # the pool's addresses are the group's VIPs
        assert set(intent.vips_of_group(1) or ()) == {
            IP("192.168.80.200"),
            IP(other),
            IP(first["dns"] or ""),
        }
        nursery.cancel_scope.cancel()


async def test_recomputes_on_health_roles_and_config(tmp_path: Path) -> None:
    store = StateStore()
    cfg = _cfg()
    store.publish(RUNNING_CONFIG, cfg)
    async with trio.open_nursery() as nursery:
        await _run(store, tmp_path, nursery)
        assert store.require(INTENT).adverts == ()  # role INIT: nothing advertised
        store.publish(role_key(1), HaRole.ACTIVE)
        await _until(store, lambda i: len(i.adverts) == 2)
        store.publish(ENDPOINT_HEALTH, {("web", IP("192.168.80.101"), 80): False})
        (advert,) = (await _until(store, lambda i: len(i.adverts) == 1)).adverts
        assert str(advert.prefix.network_address) == _vips(store.require(INTENT))["dns"]
        # a removed service releases its address; a new one gets one and it is saved
        ntp = "{name: ntp, pool: lab, port: 123, endpoints: [{address: 192.168.80.103}]}"
        store.publish(
            RUNNING_CONFIG, _cfg(CONFIG.replace("services:\n", f"services:\n  - {ntp}\n"))
        )
        vips = _vips(await _until(store, lambda i: "ntp" in _vips(i)))
        assert vips["ntp"] is not None and len(set(vips.values())) == 3
        saved = json.loads((tmp_path / "n1" / "pools.json").read_text())["addresses"]
        assert saved == vips
        nursery.cancel_scope.cancel()


async def test_a_full_pool_is_a_conflict_and_the_others_keep_their_addresses(
    tmp_path: Path,
) -> None:
    many = "".join(
        f"  - {{name: s{i}, pool: lab, port: {1000 + i}, endpoints: [{{address: {EP}}}]}}\n"
        for i in range(7)
    )
    store = StateStore()
    store.publish(RUNNING_CONFIG, _cfg(CONFIG.replace("services:\n", "services:\n" + many)))
    async with trio.open_nursery() as nursery:
        await _run(store, None, nursery)  # no state directory: kept in memory
        intent = store.require(INTENT)
        allocation = store.require(POOL_ALLOCATION)
        assert len(allocation.addresses) == 6  # a /29 has six usable addresses
        assert len(intent.pool_conflicts) == 3
        unallocated = [s for s in intent.services if s.vip is None]
        assert len(unallocated) == 3
        assert all(s.withdrawn_reason == "no address from pool lab" for s in unallocated)
        nursery.cancel_scope.cancel()


async def test_an_unwritable_state_directory_is_logged_and_the_allocation_still_applies(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = StateStore()
    store.publish(RUNNING_CONFIG, _cfg())
    async with trio.open_nursery() as nursery:
        await _run(store, blocker, nursery)
        assert all(_vips(store.require(INTENT)).values())
        nursery.cancel_scope.cancel()
