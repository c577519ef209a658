"""The native BGP speaker against GoBGP (gobgpd in the router namespace instead of BIRD).

Covered: a session with 4-octet AS numbers, the VIP with the role's MED and AS path in
GoBGP's RIB and its change on a role flip; an IPv6 session carrying an IPv6 VIP.

Not covered: IPv6 routes over the IPv4 session (MP-BGP with an IPv6 next hop). The speaker
offers the IPv6 unicast family on every session, but it only advertises IPv6 routes where it
has an IPv6 next hop, i.e. the session's own local address (`BgpSpeaker._established` sets
`next_hop6` from an IPv6 local address only); there is no configured IPv6 next hop.
"""

from __future__ import annotations

import pytest

from appliance.lab.scenarios import APPLIANCE_AS, ROUTER_AS
from tests.lab.support.gobgp import neighbor, one_path
from tests.lab.support.interop import Interop
from tests.lab.support.nodes import (
    ACTIVE,
    APPLIANCE_AS4,
    BACKUP,
    NODE1,
    NODE6,
    ROUTER,
    ROUTER6,
    ROUTER_AS4,
    SCENARIO2,
    VIP,
    VIP6,
    add_cluster_ipv6,
    example_config,
    ipv6_config,
    set_asns,
    write_config,
)

pytestmark = [
    pytest.mark.lab,
]


def test_gobgp_four_octet_session_and_role_flip(env: Interop) -> None:
    gobgp = env.gobgp(ROUTER_AS4, neighbor("node1", APPLIANCE_AS4))
    doc = set_asns(example_config(SCENARIO2, "node1"), APPLIANCE_AS4, ROUTER_AS4)
    node = env.nodes.start("node1", write_config(env.workdir, "node1", doc), ACTIVE)

    status = node.wait_established(ROUTER)
    assert status["four_octet_as"] is True and status["asn"] == ROUTER_AS4
    gobgp.wait_established(NODE1)
    (path,) = gobgp.wait_paths(VIP, one_path, "the VIP from node1")
    assert path.best and path.next_hop == NODE1 and path.source == NODE1
    assert path.med == 10 and path.as_path == (APPLIANCE_AS4,)

    node.control(roles=BACKUP)
    (path,) = gobgp.wait_paths(
        VIP, lambda ps: one_path(ps) and ps[0].med == 20, "the VIP with backup attributes"
    )
    assert path.as_path == (APPLIANCE_AS4,) * 4 and path.next_hop == NODE1

    node.control(roles=ACTIVE)
    (path,) = gobgp.wait_paths(
        VIP, lambda ps: one_path(ps) and ps[0].med == 10, "the VIP with active attributes again"
    )
    assert path.as_path == (APPLIANCE_AS4,)


def test_gobgp_ipv6_session_carries_ipv6_vip(env: Interop) -> None:
    add_cluster_ipv6(env.lab, ("router", "node1"))
    gobgp = env.gobgp(
        ROUTER_AS, neighbor("node1", APPLIANCE_AS), neighbor("node1", APPLIANCE_AS, ipv6=True)
    )
    # IPv6 VIP only: with an IPv4 one next to it the node's intent fails (see the BIRD tests)
    doc = ipv6_config(ROUTER_AS, with_ipv4_vip=False)
    node = env.nodes.start("node1", write_config(env.workdir, "node1", doc))

    node.wait_established(ROUTER6)
    node.wait_established(ROUTER)
    gobgp.wait_established(NODE6["node1"])
    gobgp.wait_established(NODE1)
    (path,) = gobgp.wait_paths(VIP6, one_path, "the IPv6 VIP", family="ipv6")
    assert path.best and path.next_hop == NODE6["node1"] and path.source == NODE6["node1"]
    assert path.med == 10 and path.as_path == (APPLIANCE_AS,)
    assert gobgp.rib("ipv4") == {}  # the IPv4 session carries no IPv6 route
