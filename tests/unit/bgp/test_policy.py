"""Import policy: RFC 8212 default deny, prefix filters with ge/le, loops, maximum prefixes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network

from appliance.config.model import Bgp
from appliance.config.values import PrefixFilter
from bgp.codec import AsPath, AsPathSegment, Origin, PathAttributes, SegmentType, Update
from bgp.errors import CeaseSubcode, ErrorCode
from bgp.policy import ImportPolicy, PeerImport, Verdict
from bgp.rib import AdjRibIn, LocRib, Path, PeerInfo
from bgp.types import IPV4_UNICAST, IPV6_UNICAST

LOCAL_AS = 65100
ROUTER_ID = IPv4Address("192.168.80.252")
EBGP = PeerInfo(IPv4Address("192.168.80.254"), IPv4Address("192.168.80.254"), 65101, True)
IBGP = PeerInfo(IPv4Address("192.168.80.253"), IPv4Address("192.168.80.253"), LOCAL_AS, False)
NH = IPv4Address("192.168.80.254")
DEFAULT_ONLY = PrefixFilter(IPv4Network("0.0.0.0/0"), 0, 0)
CLIENTS = PrefixFilter(IPv4Network("203.0.113.0/24"), 24, 28)


def path(peer: PeerInfo = EBGP, as_path: AsPath | None = None, **kw: object) -> Path:
    if as_path is None:
        as_path = AsPath.sequence([peer.asn] if peer.ebgp else [])
    attributes = PathAttributes(origin=Origin.IGP, as_path=as_path, next_hop=NH, **kw)  # type: ignore[arg-type]
    return Path(attributes, peer, NH)


def policy(*filters: PrefixFilter) -> ImportPolicy:
    return ImportPolicy(LOCAL_AS, filters, ROUTER_ID)


def test_ebgp_routes_are_denied_without_filters() -> None:
    assert policy().evaluate(ip_network("203.0.113.0/24"), path()) is Verdict.NO_FILTER_MATCH
    assert policy().evaluate(ip_network("0.0.0.0/0"), path()) is Verdict.NO_FILTER_MATCH


def test_ibgp_routes_are_accepted_without_filters() -> None:
    assert policy().evaluate(ip_network("203.0.113.0/24"), path(IBGP)) is Verdict.ACCEPT


def test_filters_with_ge_and_le() -> None:
    chosen = policy(DEFAULT_ONLY, CLIENTS)
    verdicts = {
        text: chosen.evaluate(ip_network(text), path())
        for text in (
            "0.0.0.0/0",
            "203.0.113.0/24",
            "203.0.113.16/28",
            "203.0.113.64/26",
            "203.0.113.8/29",  # longer than le
            "203.0.112.0/23",  # shorter than ge (and wider than the filter)
            "198.51.100.0/24",  # outside
            "10.0.0.0/8",
            "::/0",  # other family
        )
    }
    accepted = {text for text, verdict in verdicts.items() if verdict is Verdict.ACCEPT}
    assert accepted == {"0.0.0.0/0", "203.0.113.0/24", "203.0.113.16/28", "203.0.113.64/26"}
    v6 = policy(PrefixFilter(IPv6Network("2001:db8::/32"), 32, 48))
    assert v6.evaluate(IPv6Network("2001:db8:5::/48"), path()) is Verdict.ACCEPT
    assert v6.evaluate(IPv6Network("2001:db8:5::/64"), path()) is Verdict.NO_FILTER_MATCH
    assert v6.evaluate(IPv4Network("32.1.13.0/24"), path()) is Verdict.NO_FILTER_MATCH


def test_own_as_in_the_path_is_a_loop() -> None:
    chosen = policy(CLIENTS)
    prefix = ip_network("203.0.113.0/24")
    looped = path(as_path=AsPath.sequence([65101, 3356, LOCAL_AS, 7]))
    assert chosen.evaluate(prefix, looped) is Verdict.AS_PATH_LOOP
    in_set = AsPath(
        (
            AsPathSegment(SegmentType.AS_SEQUENCE, [65101]),
            AsPathSegment(SegmentType.AS_SET, [1, LOCAL_AS]),
        )
    )
    assert chosen.evaluate(prefix, path(as_path=in_set)) is Verdict.AS_PATH_LOOP
    internal = path(IBGP, as_path=AsPath.sequence([65101, LOCAL_AS]))
    assert chosen.evaluate(prefix, internal) is Verdict.AS_PATH_LOOP


def test_own_router_id_as_originator_is_a_loop() -> None:
    reflected = path(IBGP, originator_id=ROUTER_ID)
    assert policy().evaluate(ip_network("10.0.0.0/8"), reflected) is Verdict.ORIGINATOR_LOOP


def test_from_config() -> None:
    bgp = Bgp(asn=LOCAL_AS, router_id=ROUTER_ID, imports=(CLIENTS,))
    assert ImportPolicy.from_config(bgp) == policy(CLIENTS)


# --- per-peer state ----------------------------------------------------------------------------


def announce(rib: AdjRibIn, *texts: str, as_path: AsPath | None = None) -> Update:
    peer = rib.peer
    if as_path is None:
        as_path = AsPath.sequence([peer.asn] if peer.ebgp else [])
    attributes = PathAttributes(origin=Origin.IGP, as_path=as_path, next_hop=NH)
    return Update(attributes=attributes, nlri=[IPv4Network(t) for t in texts])


def test_peer_import_counts_and_passes_only_accepted_routes() -> None:
    rib, loc = AdjRibIn(EBGP), LocRib()
    state = PeerImport(policy(CLIENTS), EBGP)
    update = announce(rib, "203.0.113.0/24", "203.0.113.32/27", "198.51.100.0/24")
    result = state.filter(rib.apply(update))
    assert [c.prefix for c in result.changes] == [
        IPv4Network("203.0.113.0/24"),
        IPv4Network("203.0.113.32/27"),
    ]
    assert not result.limit_exceeded
    assert (state.accepted, state.rejected) == (2, 1)
    assert state.verdicts == {Verdict.ACCEPT: 2, Verdict.NO_FILTER_MATCH: 1}
    loc.apply(result.changes, EBGP)
    assert len(loc) == 2 and len(rib) == 3  # the Adj-RIB-In keeps the rejected route

    # withdrawing a rejected route does not reach the Loc-RIB; an accepted one does
    result = state.filter(rib.apply(Update(withdrawn=[IPv4Network("198.51.100.0/24")])))
    assert result.changes == []
    result = state.filter(rib.apply(Update(withdrawn=[IPv4Network("203.0.113.32/27")])))
    assert [(c.prefix, c.new) for c in result.changes] == [(IPv4Network("203.0.113.32/27"), None)]
    assert (state.accepted, state.rejected) == (1, 0)


def test_a_looped_replacement_withdraws_the_accepted_route() -> None:
    rib = AdjRibIn(EBGP)
    state = PeerImport(policy(CLIENTS), EBGP)
    state.filter(rib.apply(announce(rib, "203.0.113.0/24")))
    looped = AsPath.sequence([65101, LOCAL_AS])
    result = state.filter(rib.apply(announce(rib, "203.0.113.0/24", as_path=looped)))
    (change,) = result.changes
    assert change.old is not None and change.new is None
    assert (state.accepted, state.rejected) == (0, 1)
    assert state.verdicts[Verdict.AS_PATH_LOOP] == 1


def test_maximum_prefix() -> None:
    rib = AdjRibIn(EBGP)
    state = PeerImport(policy(CLIENTS), EBGP, max_prefix=2)
    assert not state.filter(
        rib.apply(announce(rib, "203.0.113.0/24", "203.0.113.16/28"))
    ).limit_exceeded
    result = state.filter(rib.apply(announce(rib, "198.51.100.0/24")))  # rejected: not counted
    assert not result.limit_exceeded
    result = state.filter(rib.apply(announce(rib, "203.0.113.32/28")))
    assert result.limit_exceeded and state.limit_exceeded and state.accepted == 3
    error = state.cease(IPV4_UNICAST)
    assert (error.code, error.subcode) == (
        ErrorCode.CEASE,
        CeaseSubcode.MAXIMUM_NUMBER_OF_PREFIXES_REACHED,
    )
    assert error.data == bytes([0, 1, 1, 0, 0, 0, 2])  # AFI 1, SAFI 1, limit 2 (RFC 4486)
    assert state.cease(IPV6_UNICAST).data[:3] == bytes([0, 2, 1])
    state.reset()
    assert (state.accepted, state.rejected, state.limit_exceeded) == (0, 0, False)


def test_no_limit_without_maximum() -> None:
    rib = AdjRibIn(IBGP)
    state = PeerImport(policy(), IBGP)
    texts = [f"10.{i}.0.0/16" for i in range(50)]
    assert not state.filter(rib.apply(announce(rib, *texts))).limit_exceeded
    assert state.accepted == 50


def test_reevaluate_applies_a_new_policy_to_the_adj_rib_in() -> None:
    rib = AdjRibIn(EBGP)
    state = PeerImport(policy(CLIENTS), EBGP)
    state.filter(rib.apply(announce(rib, "203.0.113.0/24", "198.51.100.0/24")))
    wider = policy(PrefixFilter(IPv4Network("198.51.100.0/24"), 24, 32))
    result = state.reevaluate(wider, rib.routes())
    moves = {(str(c.prefix), c.old is not None, c.new is not None) for c in result.changes}
    assert moves == {("203.0.113.0/24", True, False), ("198.51.100.0/24", False, True)}
    assert (state.accepted, state.rejected) == (1, 1)
    assert state.policy is wider
    assert state.reevaluate(wider, rib.routes()).changes == []
