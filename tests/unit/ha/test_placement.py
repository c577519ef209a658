"""VIP placement: on-link VIPs on the group's interface, the others on lo."""

from __future__ import annotations

import ipaddress

from appliance.ha.placement import LOOPBACK, place_vips

A = ipaddress.ip_address


def test_on_link_vips_stay_on_the_interface_and_routed_ones_go_to_lo() -> None:
    networks = [ipaddress.ip_network("192.168.80.0/24"), ipaddress.ip_network("fd80::/64")]
    vips = (A("192.168.80.200"), A("198.51.100.10"), A("fd80::200"), A("2001:db8::1"))
    assert place_vips(vips, "eth0", networks) == {
        "eth0": (A("192.168.80.200"), A("fd80::200")),
        LOOPBACK: (A("198.51.100.10"), A("2001:db8::1")),
    }


def test_without_networks_everything_is_routed() -> None:
    assert place_vips((A("192.168.80.200"),), "eth0", []) == {LOOPBACK: (A("192.168.80.200"),)}
