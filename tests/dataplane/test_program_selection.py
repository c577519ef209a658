"""lb.c under BPF_PROG_TEST_RUN: endpoint selection for new connections."""

from __future__ import annotations

import ctypes
import time

import pytest

from bpf.layout import MAX_ENDPOINTS, PersistEntry, PersistKey, Selection, be16, be32
from bpf.selection import Candidate, maglev_table, smooth_weighted
from bpf.testrun import TC_ACT_REDIRECT, TC_ACT_SHOT
from tests.dataplane.conftest import (
    CLIENT,
    ENDPOINTS,
    VIP,
    Ep,
    ProgramRig,
    ct_key,
    ether,
    tcp,
)

pytestmark = pytest.mark.lab

IPPROTO_TCP = 6

EPS = [Ep(address, 8080) for address in ENDPOINTS[:3]]


def connect(rig: ProgramRig, sport: int, client: str = CLIENT, svc_port: int = 80) -> int:
    """Open a connection (SYN) and return the endpoint index it went to."""
    result = rig.run(ether(tcp(client, VIP, sport, svc_port)))
    assert result.retval == TC_ACT_REDIRECT
    entry = rig.entry(ct_key(client, VIP, sport, svc_port))
    assert entry is not None
    return int(entry.ep_index)


def test_round_robin_cycles(dp: ProgramRig) -> None:
    dp.add_service(1, EPS, selection=Selection.ROUNDROBIN)
    assert [connect(dp, 40000 + i) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_weighted_follows_the_table(dp: ProgramRig) -> None:
    eps = [Ep(ENDPOINTS[0], 8080, weight=3), Ep(ENDPOINTS[1], 8080, weight=1)]
    table = smooth_weighted([Candidate(i, ep.addr, ep.weight) for i, ep in enumerate(eps)])
    dp.add_service(1, eps, selection=Selection.WEIGHTED, table=table)
    picks = [connect(dp, 40000 + i) for i in range(8)]
    assert picks == [table[i % len(table)] for i in range(8)]
    assert picks.count(0) == 6


@pytest.mark.parametrize("selection", [Selection.HASH, Selection.MAGLEV])
def test_hash_and_maglev_give_the_same_endpoint_for_the_same_flow(
    dp: ProgramRig, selection: Selection
) -> None:
    dp.add_service(1, EPS, selection=selection)
    first = [connect(dp, 40000 + i) for i in range(24)]
    assert len(set(first)) > 1  # flows spread
    dp.prog.table("conntrack").clear()
    connect(dp, 50000)  # moves a round-robin counter, if anything used one
    dp.prog.table("conntrack").clear()
    assert [connect(dp, 40000 + i) for i in range(24)] == first


def _mix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def flow_hash(saddr: str, daddr: str, sport: int, dport: int, proto: int) -> int:
    """lb.c's flow_hash, over the header fields as the program loads them."""
    h = _mix32(be32(saddr) ^ 0x9E3779B9)
    h = _mix32(h ^ be32(daddr))
    h = _mix32(h ^ ((be16(sport) << 16) | be16(dport)))
    return _mix32(h ^ proto)


def test_maglev_pick_is_a_pure_function_of_flow_and_table(dp: ProgramRig) -> None:
    """No seed, no node state: any node with the same Maglev table picks the same endpoint
    (checked against a reimplementation of the program's hash)."""
    table = maglev_table([Candidate(i, f"{ep.addr}:{ep.port}") for i, ep in enumerate(EPS)])
    dp.add_service(1, EPS, selection=Selection.MAGLEV, table=table)
    for sport in range(40000, 40032):
        expected = table[flow_hash(CLIENT, VIP, sport, 80, IPPROTO_TCP) % len(table)]
        assert connect(dp, sport) == expected


def test_persist_keeps_a_client_on_one_endpoint(dp: ProgramRig) -> None:
    dp.add_service(1, EPS, selection=Selection.PERSIST, persist_timeout_s=300)
    assert {connect(dp, 40000 + i) for i in range(5)} == {0}
    other = "203.0.113.20"
    assert {connect(dp, 40000 + i, client=other) for i in range(5)} == {1}

    # the record gets old: the client is placed again (round robin goes on: endpoint 2)
    key = PersistKey(svc_id=1, client=be32(CLIENT))
    old = PersistEntry(ep_index=0, last_ns=time.monotonic_ns() - 301 * 10**9)
    dp.prog.table("persist")[key] = old
    assert connect(dp, 41000) == 2
    assert connect(dp, 41001) == 2


def test_persist_moves_off_an_inactive_endpoint(dp: ProgramRig) -> None:
    dp.add_service(1, EPS, selection=Selection.PERSIST, persist_timeout_s=300)
    assert connect(dp, 40000) == 0
    inactive = [Ep(EPS[0].addr, 8080, active=False), EPS[1], EPS[2]]
    dp.add_service(1, inactive, selection=Selection.PERSIST, persist_timeout_s=300, slot=1)
    assert connect(dp, 40001) in (1, 2)


def test_leastconn_picks_the_least_loaded(dp: ProgramRig) -> None:
    dp.add_service(1, EPS, selection=Selection.LEASTCONN)
    for ep, load in enumerate([5, 2, 7]):
        dp.prog.table("ep_active")[ctypes.c_uint32(1 * MAX_ENDPOINTS + ep)] = ctypes.c_int64(load)
    picks = [connect(dp, 40000 + i) for i in range(5)]
    # 2 -> 3 -> 4 -> 5 on endpoint 1, then endpoints 0 and 1 tie at 5: the lower index
    assert picks == [1, 1, 1, 0, 1]
    assert [dp.ep_active(1, ep) for ep in range(3)] == [6, 6, 7]


def test_leastconn_skips_inactive_endpoints(dp: ProgramRig) -> None:
    eps = [Ep(EPS[0].addr, 8080, active=False), EPS[1], EPS[2]]
    dp.add_service(1, eps, selection=Selection.LEASTCONN)
    assert connect(dp, 40000) == 1


def test_stale_table_pointing_at_an_inactive_endpoint_drops(dp: ProgramRig) -> None:
    eps = [Ep(EPS[0].addr, 8080, active=False), EPS[1]]
    dp.add_service(1, eps, table=[0])
    result = dp.run(ether(tcp(CLIENT, VIP, 40000, 80)))
    assert result.retval == TC_ACT_SHOT
    assert dp.conntrack() == {}
    assert dp.svc_stats(1).drops == 1


def test_empty_table_drops(dp: ProgramRig) -> None:
    dp.add_service(1, EPS, table=[])
    assert dp.run(ether(tcp(CLIENT, VIP, 40000, 80))).retval == TC_ACT_SHOT
    assert dp.svc_stats(1).drops == 1


def test_the_service_slot_chooses_the_endpoint_set(dp: ProgramRig) -> None:
    dp.add_service(1, EPS[:1], slot=0)
    dp.add_service(1, [Ep(ENDPOINTS[3], 9090)], slot=1)
    result = dp.run(ether(tcp(CLIENT, VIP, 40000, 80)))
    assert result.retval == TC_ACT_REDIRECT
    entry = dp.entry(ct_key(CLIENT, VIP, 40000, 80))
    assert entry is not None
    assert entry.nat_dst == be32(ENDPOINTS[3])
