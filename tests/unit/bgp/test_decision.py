"""The decision process: one test per rule, deterministic MED, multipath, and properties."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

from hypothesis import given
from hypothesis import strategies as st

from bgp.codec import AsPath, AsPathSegment, Origin, PathAttributes, SegmentType
from bgp.decision import (
    DecisionOptions,
    Reason,
    best_path,
    compare,
    explain,
    neighbour_as,
    select,
)
from bgp.rib import Path, PeerInfo

LOCAL_AS = 65100
DEFAULT = DecisionOptions()


def make_path(
    peer: str = "10.0.0.1",
    asn: int = 65001,
    *,
    ebgp: bool = True,
    router_id: str | None = None,
    igp_metric: int = 0,
    as_path: AsPath | list[int] | None = None,
    origin: Origin = Origin.IGP,
    med: int | None = None,
    local_pref: int | None = None,
    originator_id: str | None = None,
    cluster_list: tuple[str, ...] = (),
) -> Path:
    if as_path is None:
        as_path = [asn] if ebgp else []
    if isinstance(as_path, list):
        as_path = AsPath.sequence(as_path)
    address = ip_address(peer)
    rid = IPv4Address(router_id) if router_id else IPv4Address("1.1.1.1")
    attributes = PathAttributes(
        origin=origin,
        as_path=as_path,
        next_hop=address if isinstance(address, IPv4Address) else None,
        med=med,
        local_pref=local_pref,
        originator_id=IPv4Address(originator_id) if originator_id else None,
        cluster_list=tuple(IPv4Address(c) for c in cluster_list),
    )
    return Path(attributes, PeerInfo(address, rid, asn, ebgp, igp_metric), address)


def decided(a: Path, b: Path, options: DecisionOptions = DEFAULT) -> tuple[Path, Reason]:
    """compare() both ways round; both must agree."""
    winner, reason = compare(a, b, options)
    assert compare(b, a, options) == (winner, reason)
    return winner, reason


# --- one test per rule --------------------------------------------------------------------


def test_highest_local_pref_wins() -> None:
    high = make_path("10.0.0.1", ebgp=False, local_pref=200, as_path=[65001, 65002, 65003])
    low = make_path("10.0.0.2", ebgp=False, local_pref=150, as_path=[65001])
    assert decided(high, low) == (high, Reason.LOCAL_PREF)


def test_missing_local_pref_counts_as_100() -> None:
    learned = make_path("10.0.0.1", ebgp=True)  # eBGP routes carry no LOCAL_PREF
    internal = make_path("10.0.0.2", ebgp=False, local_pref=99)
    assert decided(learned, internal) == (learned, Reason.LOCAL_PREF)
    custom = DecisionOptions(default_local_pref=50)
    assert decided(learned, internal, custom) == (internal, Reason.LOCAL_PREF)


def test_shortest_as_path_wins() -> None:
    short = make_path("10.0.0.2", 65001, as_path=[65001, 65010])
    long = make_path("10.0.0.1", 65002, as_path=[65002, 65020, 65030])
    assert decided(short, long) == (short, Reason.AS_PATH)


def test_as_set_counts_one_and_confederation_segments_zero() -> None:
    with_set = AsPath(
        (
            AsPathSegment(SegmentType.AS_SEQUENCE, [65001]),
            AsPathSegment(SegmentType.AS_SET, [1, 2, 3, 4]),
        )
    )
    with_confed = AsPath(
        (
            AsPathSegment(SegmentType.AS_CONFED_SEQUENCE, [64512, 64513, 64514]),
            AsPathSegment(SegmentType.AS_SEQUENCE, [65001, 65005]),
        )
    )
    three = make_path("10.0.0.1", as_path=[65001, 7, 8])
    assert decided(make_path("10.0.0.2", as_path=with_set), three)[1] is Reason.AS_PATH
    a, b = make_path("10.0.0.3", as_path=with_set), make_path("10.0.0.4", as_path=with_confed)
    assert decided(a, b)[1] is not Reason.AS_PATH  # 2 == 2


def test_lowest_origin_wins() -> None:
    igp = make_path("10.0.0.3", origin=Origin.IGP)
    egp = make_path("10.0.0.2", origin=Origin.EGP)
    incomplete = make_path("10.0.0.1", origin=Origin.INCOMPLETE)
    assert decided(igp, egp) == (igp, Reason.ORIGIN)
    assert decided(egp, incomplete) == (egp, Reason.ORIGIN)


def test_lowest_med_wins_between_paths_from_the_same_as() -> None:
    low = make_path("10.0.0.2", 65001, med=10)
    high = make_path("10.0.0.1", 65001, med=20)
    assert decided(low, high) == (low, Reason.MED)
    missing = make_path("10.0.0.3", 65001)  # no MED: 0
    assert decided(missing, low) == (missing, Reason.MED)


def test_med_is_ignored_between_different_neighbour_ases() -> None:
    low = make_path("10.0.0.2", 65001, med=10)
    high = make_path("10.0.0.1", 65002, med=20)
    assert decided(low, high) == (high, Reason.PEER_ADDRESS)
    assert decided(low, high, DecisionOptions(always_compare_med=True)) == (low, Reason.MED)


def test_ebgp_beats_ibgp() -> None:
    external = make_path("10.0.0.2", 65001, ebgp=True)
    internal = make_path("10.0.0.1", LOCAL_AS, ebgp=False, as_path=[65001])
    assert decided(external, internal) == (external, Reason.EBGP)


def test_lowest_igp_metric_wins() -> None:
    near = make_path("10.0.0.2", LOCAL_AS, ebgp=False, igp_metric=10, as_path=[65001])
    far = make_path("10.0.0.1", LOCAL_AS, ebgp=False, igp_metric=20, as_path=[65001])
    assert decided(near, far) == (near, Reason.IGP_METRIC)


def test_oldest_ebgp_path_wins_only_with_the_option() -> None:
    old = make_path("10.0.0.2", 65001, router_id="9.9.9.9")
    new = make_path("10.0.0.1", 65002, router_id="1.1.1.1")
    on = DecisionOptions(prefer_oldest=True)
    assert compare(old, new, on, older=old) == (old, Reason.OLDEST)
    assert compare(new, old, on, older=old) == (old, Reason.OLDEST)
    assert compare(old, new, older=old) == (new, Reason.ROUTER_ID)
    assert best_path([old, new], on) is old
    assert best_path([new, old], on) is new


def test_oldest_rule_skips_ibgp_paths() -> None:
    old = make_path("10.0.0.2", LOCAL_AS, ebgp=False, router_id="9.9.9.9", as_path=[65001])
    new = make_path("10.0.0.1", LOCAL_AS, ebgp=False, router_id="1.1.1.1", as_path=[65001])
    on = DecisionOptions(prefer_oldest=True)
    assert compare(old, new, on, older=old) == (new, Reason.ROUTER_ID)


def test_lowest_router_id_wins() -> None:
    low = make_path("10.0.0.2", router_id="1.1.1.1")
    high = make_path("10.0.0.1", router_id="2.2.2.2")
    assert decided(low, high) == (low, Reason.ROUTER_ID)


def test_originator_id_stands_in_for_the_router_id() -> None:
    reflected = make_path(
        "10.0.0.2", LOCAL_AS, ebgp=False, router_id="9.9.9.9", originator_id="1.1.1.1"
    )
    direct = make_path("10.0.0.1", LOCAL_AS, ebgp=False, router_id="2.2.2.2")
    assert decided(reflected, direct) == (reflected, Reason.ROUTER_ID)


def test_shortest_cluster_list_wins() -> None:
    short = make_path("10.0.0.2", LOCAL_AS, ebgp=False, cluster_list=("10.9.9.1",))
    long = make_path("10.0.0.1", LOCAL_AS, ebgp=False, cluster_list=("10.9.9.1", "10.9.9.2"))
    assert decided(short, long) == (short, Reason.CLUSTER_LIST)


def test_lowest_peer_address_wins() -> None:
    low = make_path("10.0.0.1")
    high = make_path("10.0.0.2")
    assert decided(low, high) == (low, Reason.PEER_ADDRESS)
    v6 = make_path("2001:db8::1")
    assert decided(low, v6) == (low, Reason.PEER_ADDRESS)  # IPv4 peers sort first


def test_equal_only_against_itself() -> None:
    path = make_path()
    assert compare(path, path) == (path, Reason.EQUAL)


# --- deterministic MED, selection, explanation ----------------------------------------------


def test_deterministic_med_gives_one_best_for_every_arrival_order() -> None:
    # Pairwise in arrival order: a beats b on MED, c beats a on router id, b beats c on router id.
    a = make_path("10.0.0.1", 65001, med=10, router_id="3.3.3.3")
    b = make_path("10.0.0.2", 65001, med=20, router_id="1.1.1.1")
    c = make_path("10.0.0.3", 65002, router_id="2.2.2.2")
    for order in ([a, b, c], [b, c, a], [c, a, b], [c, b, a], [a, c, b], [b, a, c]):
        assert best_path(order) is c
    reasons = dict((id(p), r) for p, r in explain([a, b, c]))
    assert reasons[id(c)] is None
    assert reasons[id(a)] is Reason.ROUTER_ID
    assert reasons[id(b)] is Reason.MED  # lost to a within AS 65001


def test_neighbour_as_is_the_first_as_or_the_peer_as() -> None:
    assert neighbour_as(make_path(asn=65001, as_path=[65001, 65002])) == 65001
    assert neighbour_as(make_path(asn=LOCAL_AS, ebgp=False, as_path=[])) == LOCAL_AS


def test_multipath_groups_equal_paths_from_the_same_as() -> None:
    a = make_path("10.0.0.1", 65001, med=5, router_id="1.1.1.2")
    b = make_path("10.0.0.2", 65001, med=5, router_id="1.1.1.1")
    c = make_path("10.0.0.3", 65001, med=6)
    chosen = select([a, b, c])
    assert chosen.best is b
    assert chosen.multipath == (b, a)
    assert select([a, b, c], DecisionOptions(multipath=False)).multipath == (b,)


def test_multipath_needs_equal_igp_metric_and_same_session_type() -> None:
    a = make_path("10.0.0.1", LOCAL_AS, ebgp=False, as_path=[65001], igp_metric=1)
    b = make_path("10.0.0.2", LOCAL_AS, ebgp=False, as_path=[65001], igp_metric=2)
    assert select([a, b]).multipath == (a,)
    e = make_path("10.0.0.3", 65001)
    assert select([a, e]).multipath == (e,)


def test_multipath_across_neighbour_ases_needs_relax() -> None:
    a = make_path("10.0.0.1", 65001)
    b = make_path("10.0.0.2", 65002)
    assert select([a, b]).multipath == (a,)
    assert select([a, b], DecisionOptions(multipath_relax=True)).multipath == (a, b)


def test_select_of_nothing() -> None:
    assert select([]) == (None, ())


# --- properties -------------------------------------------------------------------------------


@st.composite
def paths(draw: st.DrawFn) -> list[Path]:
    count = draw(st.integers(1, 6))
    hosts = draw(st.lists(st.integers(1, 250), min_size=count, max_size=count, unique=True))
    out = []
    for host in hosts:
        ebgp = draw(st.booleans())
        neighbour = draw(st.sampled_from([65001, 65002, 65003]))
        tail = draw(st.lists(st.sampled_from([7, 8, 9]), max_size=2))
        peer = draw(st.sampled_from([f"10.0.0.{host}", str(IPv6Address(f"2001:db8::{host:x}"))]))
        out.append(
            make_path(
                peer,
                neighbour if ebgp else LOCAL_AS,
                ebgp=ebgp,
                router_id=f"1.1.1.{draw(st.integers(1, 3))}",
                igp_metric=draw(st.sampled_from([0, 10])),
                as_path=[neighbour, *tail] if ebgp or draw(st.booleans()) else [],
                origin=draw(st.sampled_from(list(Origin))),
                med=draw(st.sampled_from([None, 0, 10, 20])),
                local_pref=None if ebgp else draw(st.sampled_from([None, 90, 100, 200])),
                originator_id=None if ebgp else draw(st.sampled_from([None, "1.1.1.2"])),
                cluster_list=() if ebgp else ("10.9.9.9",) * draw(st.integers(0, 2)),
            )
        )
    return out


@given(st.data(), paths(), st.sampled_from([DecisionOptions(), DecisionOptions(True)]))
def test_best_and_multipath_do_not_depend_on_arrival_order(
    data: st.DataObject, candidates: list[Path], options: DecisionOptions
) -> None:
    shuffled = data.draw(st.permutations(candidates))
    assert select(shuffled, options) == select(candidates, options)


@given(paths(), st.sampled_from([DecisionOptions(), DecisionOptions(True)]))
def test_compare_is_antisymmetric(candidates: list[Path], options: DecisionOptions) -> None:
    for a in candidates:
        for b in candidates:
            if a is b:
                continue
            ab, ba = compare(a, b, options), compare(b, a, options)
            assert ab.winner is ba.winner
            assert ab.reason == ba.reason is not Reason.EQUAL


@given(paths())
def test_best_beats_every_path_of_its_neighbour_as(candidates: list[Path]) -> None:
    best = best_path(candidates)
    for other in candidates:
        if other is not best and neighbour_as(other) == neighbour_as(best):
            assert compare(best, other).winner is best


@given(paths(), st.booleans())
def test_best_beats_every_path_when_med_is_always_compared(
    candidates: list[Path], relax: bool
) -> None:
    options = DecisionOptions(always_compare_med=True, multipath_relax=relax)
    chosen = select(candidates, options)
    assert chosen.best is not None and chosen.multipath[0] is chosen.best
    for other in candidates:
        if other is not chosen.best:
            assert compare(chosen.best, other, options).winner is chosen.best
