"""Unsolicited IPv6 Neighbour Advertisements (RFC 4861 §7.2.6), byte for byte, and the split of
a mixed VIP list between ARP and NA in `announcement_frames` (sending them is tested for real in
tests/lab/test_ha_ipv6_parts.py)."""

from __future__ import annotations

import ipaddress
import struct

import dpkt
import pytest

from appliance.checksum import internet_checksum
from appliance.config.values import IPAddress
from appliance.ha import garp
from appliance.ha.garp import garp_frame, unsolicited_na_frame

MAC = bytes.fromhex("02aabbccddee")
VIP6 = ipaddress.IPv6Address("fd80::100")
VIP4 = ipaddress.IPv4Address("192.168.80.200")
ALL_NODES = ipaddress.IPv6Address("ff02::1")


def _icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 8200 §8.1 pseudo-header: source, destination, 32-bit length, 3 zeros, next header."""
    pseudo = src + dst + struct.pack("!I3xB", len(message), 58)
    return internet_checksum(pseudo + message)


def test_na_frame_bytes() -> None:
    frame = unsolicited_na_frame(MAC, VIP6)
    assert len(frame) == 86  # 14 + 40 + 32: above the Ethernet minimum, nothing padded
    assert frame[:14] == bytes.fromhex("333300000001") + MAC + bytes.fromhex("86dd")
    ipv6 = frame[14:54]
    assert ipv6[:4] == bytes.fromhex("60000000")  # version 6, traffic class 0, flow 0
    assert ipv6[4:8] == bytes.fromhex("0020 3a ff".replace(" ", ""))  # 32 bytes, ICMPv6, 255
    assert ipv6[8:24] == VIP6.packed  # source: the VIP itself
    assert ipv6[24:40] == ALL_NODES.packed
    icmp = frame[54:]
    assert icmp[:2] == bytes([136, 0])  # Neighbour Advertisement, code 0
    assert icmp[4:8] == bytes.fromhex("20000000")  # R=0 S=0 O=1
    assert icmp[8:24] == VIP6.packed  # target
    assert icmp[24:] == bytes([2, 1]) + MAC  # Target Link-Layer Address, 8 bytes


def test_na_checksum_recomputed_independently() -> None:
    frame = unsolicited_na_frame(MAC, VIP6)
    icmp = frame[54:]
    stored = struct.unpack("!H", icmp[2:4])[0]
    assert stored != 0
    zeroed = icmp[:2] + b"\x00\x00" + icmp[4:]
    assert _icmpv6_checksum(VIP6.packed, ALL_NODES.packed, zeroed) == stored
    # and the whole message with its checksum sums to zero, as a receiver verifies it
    assert _icmpv6_checksum(VIP6.packed, ALL_NODES.packed, icmp) == 0


def test_na_frame_parses_with_dpkt() -> None:
    eth = dpkt.ethernet.Ethernet(unsolicited_na_frame(MAC, VIP6))
    assert eth.type == dpkt.ethernet.ETH_TYPE_IP6
    assert eth.src == MAC
    ip6 = eth.data
    assert isinstance(ip6, dpkt.ip6.IP6)
    assert (ip6.v, ip6.nxt, ip6.hlim, ip6.plen) == (6, 58, 255, 32)
    assert (ip6.src, ip6.dst) == (VIP6.packed, ALL_NODES.packed)
    icmp = ip6.data
    assert isinstance(icmp, dpkt.icmp6.ICMP6)
    assert (icmp.type, icmp.code) == (dpkt.icmp6.ND_NEIGHBOR_ADVERT, 0)


@pytest.mark.parametrize("vip", ["fe80::1", "2001:db8::1", "fd80::ffff:ffff"])
def test_na_checksum_for_other_vips(vip: str) -> None:
    address = ipaddress.IPv6Address(vip)
    icmp = unsolicited_na_frame(MAC, address)[54:]
    assert _icmpv6_checksum(address.packed, ALL_NODES.packed, icmp) == 0
    assert icmp[8:24] == address.packed


def test_na_frame_rejects_a_bad_mac() -> None:
    with pytest.raises(ValueError):
        unsolicited_na_frame(b"\x00" * 7, VIP6)


def test_announcement_frames_mix_arp_and_na_in_order() -> None:
    vips: list[IPAddress] = [VIP4, VIP6, VIP4]
    assert garp.announcement_frames(MAC, iter(vips)) == [
        garp_frame(MAC, VIP4),
        unsolicited_na_frame(MAC, VIP6),
        garp_frame(MAC, VIP4),
    ]
