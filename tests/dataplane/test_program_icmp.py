"""lb.c under BPF_PROG_TEST_RUN: ICMP errors about tracked flows (PMTU discovery)."""

from __future__ import annotations

import dpkt
import pytest

from bpf.layout import Mode
from bpf.testrun import TC_ACT_OK, TC_ACT_REDIRECT
from tests.dataplane.conftest import (
    BACK_MAC,
    CLIENT,
    CLIENT_MAC,
    FRONT_MAC,
    SNAT,
    VIP,
    Ep,
    ProgramRig,
    checksums_ok,
    ep_mac,
    ether,
    frag_needed,
    ip_bytes,
    ip_header_ok,
    mac_bytes,
    parse,
    tcp,
    udp,
)

pytestmark = pytest.mark.lab

EP1 = "192.168.80.101"
EP_ROUTER = "192.168.80.254"
CLIENT_ROUTER = "203.0.113.254"


def quoted(frame: bytes) -> tuple[dpkt.ip.IP, bytes]:
    """The ICMP error's outer IP and the raw quoted packet (IP header + 8 bytes)."""
    ip = parse(frame).data
    start = 14 + ip.hl * 4 + 8
    return ip, frame[start : 14 + ip.len]


def assert_quote(raw: bytes, src: str, dst: str, sport: int, dport: int) -> None:
    hl = (raw[0] & 0xF) * 4
    assert ip_header_ok(raw[:hl])
    assert (raw[12:16], raw[16:20]) == (ip_bytes(src), ip_bytes(dst))
    assert int.from_bytes(raw[hl : hl + 2], "big") == sport
    assert int.from_bytes(raw[hl + 2 : hl + 4], "big") == dport


def open_fullnat(rig: ProgramRig, proto: str = "tcp") -> int:
    """A full-NAT connection CLIENT:40000 -> VIP:80 -> EP1:8080; returns the node's port."""
    if proto == "tcp":
        rig.add_service(1, [Ep(EP1, 8080)], mode=Mode.FULLNAT)
        frame = ether(tcp(CLIENT, VIP, 40000, 80))
    else:
        rig.add_service(1, [Ep(EP1, 8080)], mode=Mode.FULLNAT, proto=dpkt.ip.IP_PROTO_UDP)
        frame = ether(udp(CLIENT, VIP, 40000, 80))
    result = rig.run(frame)
    assert result.retval == TC_ACT_REDIRECT
    return int(parse(result.data).data.data.sport)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_frag_needed_on_the_endpoint_side_reaches_the_client(dp: ProgramRig, proto: str) -> None:
    port = open_fullnat(dp, proto)
    sent = (
        tcp(SNAT, EP1, port, 8080, payload=b"x" * 1400)
        if proto == "tcp"
        else udp(SNAT, EP1, port, 8080, payload=b"x" * 1400)
    )
    error = ether(frag_needed(EP_ROUTER, SNAT, sent, mtu=1280), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(error, ingress="back")

    assert result.retval == TC_ACT_REDIRECT
    eth = parse(result.data)
    assert (eth.src, eth.dst) == (mac_bytes(FRONT_MAC), mac_bytes(CLIENT_MAC))
    outer, quote = quoted(result.data)
    assert (outer.src, outer.dst) == (ip_bytes(EP_ROUTER), ip_bytes(CLIENT))
    assert (outer.data.type, outer.data.code) == (3, 4)
    assert outer.data.data.mtu == 1280
    assert checksums_ok(result.data)  # outer IP and ICMP
    assert_quote(quote, CLIENT, VIP, 40000, 80)


def test_frag_needed_on_the_client_side_reaches_the_endpoint(dp: ProgramRig) -> None:
    port = open_fullnat(dp)
    sent = tcp(VIP, CLIENT, 80, 40000, flags=dpkt.tcp.TH_ACK, payload=b"x" * 1400)
    error = ether(frag_needed(CLIENT_ROUTER, VIP, sent, mtu=1300))
    result = dp.run(error)

    assert result.retval == TC_ACT_REDIRECT
    eth = parse(result.data)
    assert (eth.src, eth.dst) == (mac_bytes(BACK_MAC), mac_bytes(ep_mac(EP1)))
    outer, quote = quoted(result.data)
    assert (outer.src, outer.dst) == (ip_bytes(CLIENT_ROUTER), ip_bytes(EP1))
    assert outer.data.data.mtu == 1300
    assert checksums_ok(result.data)
    assert_quote(quote, EP1, SNAT, 8080, port)


def test_error_from_the_endpoint_itself_speaks_for_the_vip(dp: ProgramRig) -> None:
    port = open_fullnat(dp)
    sent = tcp(SNAT, EP1, port, 8080)
    error = ether(frag_needed(EP1, SNAT, sent), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(error, ingress="back")
    assert result.retval == TC_ACT_REDIRECT
    outer, quote = quoted(result.data)
    assert (outer.src, outer.dst) == (ip_bytes(VIP), ip_bytes(CLIENT))
    assert checksums_ok(result.data)
    assert_quote(quote, CLIENT, VIP, 40000, 80)


def test_default_mode_error_towards_the_client_quotes_the_vip(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    assert dp.run(ether(tcp(CLIENT, VIP, 40000, 80))).retval == TC_ACT_REDIRECT
    sent = tcp(CLIENT, EP1, 40000, 8080)
    error = ether(frag_needed(EP_ROUTER, CLIENT, sent), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(error, ingress="back")
    assert result.retval == TC_ACT_REDIRECT
    outer, quote = quoted(result.data)
    assert (outer.src, outer.dst) == (ip_bytes(EP_ROUTER), ip_bytes(CLIENT))
    assert checksums_ok(result.data)
    assert_quote(quote, CLIENT, VIP, 40000, 80)


def test_time_exceeded_is_translated_too(dp: ProgramRig) -> None:
    port = open_fullnat(dp)
    raw = bytes(tcp(SNAT, EP1, port, 8080))
    msg = dpkt.icmp.ICMP(
        type=dpkt.icmp.ICMP_TIMEXCEED, data=dpkt.icmp.ICMP.TimeExceed(data=raw[:28])
    )
    error = ether(
        dpkt.ip.IP(src=ip_bytes(EP_ROUTER), dst=ip_bytes(SNAT), p=1, ttl=64, data=msg),
        src=ep_mac(EP1),
        dst=BACK_MAC,
    )
    result = dp.run(error, ingress="back")
    assert result.retval == TC_ACT_REDIRECT
    outer, quote = quoted(result.data)
    assert outer.dst == ip_bytes(CLIENT)
    assert checksums_ok(result.data)
    assert_quote(quote, CLIENT, VIP, 40000, 80)


def test_error_about_an_unknown_flow_passes_untouched(dp: ProgramRig) -> None:
    open_fullnat(dp)
    sent = tcp(SNAT, EP1, 1, 8080)
    error = ether(frag_needed(EP_ROUTER, SNAT, sent), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(error, ingress="back")
    assert (result.retval, result.data) == (TC_ACT_OK, error)
