"""VIP pool allocation: deterministic, stable, explicit VIPs respected, conflicts reported."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from appliance.config.model import Endpoint, Service, VipPool
from appliance.pools import allocate, load_allocation, save_allocation, usable

POOL = VipPool("lab", ipaddress.ip_network("198.51.100.0/29"))  # 6 usable addresses
EP = (Endpoint(ipaddress.ip_address("192.168.80.101"), 80),)


def _svc(name: str, *, pool: str | None = "lab", vip: str | None = None) -> Service:
    return Service(
        name, 80, EP, vip=ipaddress.ip_address(vip) if vip else None, pool=None if vip else pool
    )


def test_every_pool_service_gets_a_usable_address_of_its_own() -> None:
    got = allocate([POOL], [_svc("a"), _svc("b"), _svc("c")])
    assert not got.conflicts
    assert len(set(got.addresses.values())) == 3
    assert all(usable(POOL.cidr, a) for a in got.addresses.values())
    assert ipaddress.ip_address("198.51.100.0") not in got.addresses.values()
    assert ipaddress.ip_address("198.51.100.7") not in got.addresses.values()


@given(st.permutations(["a", "b", "c", "d", "web", "dns"]))
def test_the_same_services_in_any_order_get_the_same_addresses(names: list[str]) -> None:
    reference = allocate([POOL], [_svc(n) for n in sorted(names)])
    assert allocate([POOL], [_svc(n) for n in names]) == reference


def test_an_allocation_never_moves_while_its_service_exists() -> None:
    first = allocate([POOL], [_svc("a"), _svc("b")])
    # more services, one removed and re-added elsewhere in the list: a and b keep theirs
    later = allocate([POOL], [_svc("z"), _svc("b"), _svc("y"), _svc("a")], first.addresses)
    assert later.addresses["a"] == first.addresses["a"]
    assert later.addresses["b"] == first.addresses["b"]


def test_explicit_vips_inside_the_pool_are_never_handed_out() -> None:
    explicit = [_svc(f"x{i}", vip=f"198.51.100.{i}") for i in range(1, 6)]
    got = allocate([POOL], [*explicit, _svc("p")])
    assert got.addresses == {"p": ipaddress.ip_address("198.51.100.6")}
    # a kept address that an explicit VIP now claims is given up for a free one
    moved = allocate([POOL], [_svc("x", vip="198.51.100.6"), _svc("p")], got.addresses)
    assert moved.addresses["p"] != ipaddress.ip_address("198.51.100.6")


def test_a_full_pool_and_a_missing_pool_are_conflicts() -> None:
    got = allocate([POOL], [_svc(f"s{i}") for i in range(7)] + [_svc("q", pool="nope")])
    assert len(got.addresses) == 6
    assert any("is full" in c for c in got.conflicts)
    assert any("no pool nope" in c for c in got.conflicts)


def test_ipv6_pools_skip_the_subnet_router_anycast_address() -> None:
    pool = VipPool("v6", ipaddress.ip_network("2001:db8:100::/126"))
    got = allocate([pool], [_svc(n, pool="v6") for n in ("a", "b", "c")])
    assert ipaddress.ip_address("2001:db8:100::") not in got.addresses.values()
    assert len(set(got.addresses.values())) == 3


def test_saved_allocation_round_trips_and_bad_files_read_as_empty(tmp_path: Path) -> None:
    got = allocate([POOL], [_svc("a"), _svc("b")])
    path = tmp_path / "state" / "pools.json"
    save_allocation(path, got)
    assert load_allocation(path) == got.addresses
    path.write_text("{not json")
    assert load_allocation(path) == {}
    assert load_allocation(tmp_path / "missing.json") == {}
