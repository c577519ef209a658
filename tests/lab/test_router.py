"""The lab router's BIRD config: equal paths become an ECMP kernel route, a lower MED wins.

BIRD in the node namespaces stands in for the appliance's BGP speaker here; the subject under
test is the router's generated configuration, not the appliance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import NODE_ADDRESSES, ROUTER_CLUSTER_ADDRESS

pytestmark = [
    pytest.mark.lab,
]

VIP = "198.51.100.10"


def _advertise_from_nodes(handle: LabHandle, meds: dict[str, int]) -> None:
    for node, med in meds.items():
        ip = NODE_ADDRESSES[node]
        conf = handle.log_dir / f"{node}-peer.conf"
        conf.write_text(
            f"router id {ip};\n"
            "protocol device {}\n"
            f"protocol static vips {{ ipv4; route {VIP}/32 unreachable; }}\n"
            f"protocol bgp up {{\n  local {ip} as 65100;\n"
            f"  neighbor {ROUTER_CLUSTER_ADDRESS} as 65101;\n"
            f"  ipv4 {{ import none; export filter {{ bgp_med = {med}; accept; }}; "
            "next hop self; };\n}\n"
        )
        socket = handle.log_dir / f"{node}-peer.ctl"
        handle.spawn(node, f"{node}-peer", ["bird", "-f", "-c", str(conf), "-s", str(socket)])


def _bird_routes(handle: LabHandle) -> int:
    try:
        return handle.birdc(f"show route {VIP}/32").count("unicast [")
    except RuntimeError:  # "Network not found" (birdc exits non-zero)
        return 0


def _vip_route(handle: LabHandle, want_nexthops: int, timeout: float = 15.0) -> str:
    """The router's kernel route for the VIP once BIRD has learnt it from both nodes."""
    deadline = time.monotonic() + timeout
    while _bird_routes(handle) < 2:
        assert time.monotonic() < deadline, handle.birdc("show protocols")
        time.sleep(0.1)
    route = ""
    while time.monotonic() < deadline:
        route = handle.exec("router", ["ip", "route", "show", VIP], timeout=5).stdout
        hops = route.count("nexthop via") or (1 if " via " in route else 0)
        if hops == want_nexthops:
            return route
        time.sleep(0.1)
    raise AssertionError(f"router route for {VIP} after {timeout}s: {route!r}")


def test_equal_advertisements_give_an_ecmp_route(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario3", start_endpoints=False)
    _advertise_from_nodes(handle, {"node1": 0, "node2": 0})
    route = _vip_route(handle, want_nexthops=2)
    assert "nexthop via 192.168.80.252" in route and "nexthop via 192.168.80.253" in route


def test_lower_med_wins(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario2", start_endpoints=False)
    _advertise_from_nodes(handle, {"node1": 100, "node2": 10})
    route = _vip_route(handle, want_nexthops=1)
    assert "via 192.168.80.253" in route and "nexthop" not in route
    assert "node1" in handle.birdc(f"show route {VIP}/32 all")
