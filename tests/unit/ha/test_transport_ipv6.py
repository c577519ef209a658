"""The pure parts of the IPv6 VRRP transport: ancillary data of a received datagram."""

from __future__ import annotations

import ipaddress
import socket
import struct

from appliance.ha import transport, wire
from appliance.ha.transport import SO_TIMESTAMPNS, Datagram, arrival_time, parse_ipv6_ancillary

V6 = socket.IPPROTO_IPV6
LL = ipaddress.IPv6Address("fe80::1")


def _hoplimit(value: int) -> tuple[int, int, bytes]:
    return (V6, transport.IPV6_HOPLIMIT, struct.pack("=i", value))


def _pktinfo(dst: ipaddress.IPv6Address, ifindex: int = 3) -> tuple[int, int, bytes]:
    return (V6, transport.IPV6_PKTINFO, dst.packed + struct.pack("=I", ifindex))


def test_linux_option_values() -> None:
    assert (transport.IPV6_HOPLIMIT, transport.IPV6_PKTINFO) == (52, 50)
    assert (transport.IPV6_RECVHOPLIMIT, transport.IPV6_RECVPKTINFO) == (51, 49)
    assert transport.IPV6_CHECKSUM == 7


def test_hop_limit_and_destination() -> None:
    ancdata = [_hoplimit(255), _pktinfo(wire.VRRP_GROUP_V6)]
    assert parse_ipv6_ancillary(ancdata) == (255, wire.VRRP_GROUP_V6)


def test_order_does_not_matter() -> None:
    ancdata = [_pktinfo(LL), _hoplimit(1)]
    assert parse_ipv6_ancillary(ancdata) == (1, LL)


def test_missing_parts_are_none() -> None:
    assert parse_ipv6_ancillary([]) == (None, None)
    assert parse_ipv6_ancillary([_hoplimit(64)]) == (64, None)
    assert parse_ipv6_ancillary([_pktinfo(LL)]) == (None, LL)


def test_other_levels_and_short_data_are_ignored() -> None:
    ancdata = [
        (socket.IPPROTO_IP, transport.IPV6_HOPLIMIT, struct.pack("=i", 7)),
        (socket.SOL_SOCKET, transport.IPV6_PKTINFO, LL.packed + bytes(4)),
        (V6, transport.IPV6_HOPLIMIT, b"\x01\x02"),
        (V6, transport.IPV6_PKTINFO, LL.packed),
    ]
    assert parse_ipv6_ancillary(ancdata) == (None, None)


def test_out_of_range_hop_limit_is_none() -> None:
    assert parse_ipv6_ancillary([_hoplimit(-1)]) == (None, None)
    assert parse_ipv6_ancillary([_hoplimit(256)]) == (None, None)


def test_scope_id_is_dropped() -> None:
    scoped = ipaddress.IPv6Address("fe80::1%eth0")
    assert transport._unscoped(scoped) == LL
    assert transport._unscoped(LL) is LL
    v4 = ipaddress.IPv4Address("192.0.2.1")
    assert transport._unscoped(v4) is v4


def test_datagram_holds_ipv6() -> None:
    d = Datagram(src=LL, dst=wire.VRRP_GROUP_V6, ttl=255, payload=b"x")
    assert d.src.version == d.dst.version == 6


def test_arrival_time_from_the_kernel_timestamp() -> None:
    stamp = struct.pack("=qq", 1_790_000_000, 250_000_000)
    assert arrival_time([(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp)]) == 1_790_000_000.25
    assert arrival_time([(socket.IPPROTO_IPV6, 52, b"\x00" * 4)]) is None
