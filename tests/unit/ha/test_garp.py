"""Gratuitous ARP frames, byte for byte."""

from __future__ import annotations

import ipaddress

import dpkt
import pytest

from appliance.ha.garp import garp_frame

MAC = bytes.fromhex("02aabbccddee")
VIP = ipaddress.IPv4Address("192.168.80.200")


def test_garp_frame_bytes() -> None:
    expected = (
        bytes.fromhex("ffffffffffff")  # destination: broadcast
        + MAC  # source
        + bytes.fromhex("0806")  # ethertype ARP
        + bytes.fromhex("0001 0800 06 04 0001".replace(" ", ""))  # Ethernet/IPv4, request
        + MAC
        + VIP.packed  # sender: our MAC, the VIP
        + bytes(6)
        + VIP.packed  # target: unknown MAC, the VIP itself
    )
    frame = garp_frame(MAC, VIP)
    assert len(frame) == 60
    assert frame[:42] == expected
    assert frame[42:] == bytes(18)  # padded to the Ethernet minimum


def test_garp_frame_parses_as_a_gratuitous_request() -> None:
    eth = dpkt.ethernet.Ethernet(garp_frame(MAC, VIP))
    arp = eth.data
    assert isinstance(arp, dpkt.arp.ARP)
    assert arp.op == dpkt.arp.ARP_OP_REQUEST
    assert arp.spa == arp.tpa == VIP.packed
    assert arp.sha == MAC == eth.src


def test_garp_frame_rejects_a_bad_mac() -> None:
    with pytest.raises(ValueError):
        garp_frame(b"\x00" * 5, VIP)
