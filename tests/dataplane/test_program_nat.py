"""lb.c under BPF_PROG_TEST_RUN: parsing, the four NAT modes, checksums and forwarding."""

from __future__ import annotations

import dpkt
import pytest

from bpf.layout import CT_DSR, CT_REPLY, CtState, Mode, be16, be32
from bpf.testrun import TC_ACT_OK, TC_ACT_REDIRECT, TC_ACT_SHOT
from tests.dataplane.conftest import (
    BACK_ADDR,
    BACK_MAC,
    CLIENT,
    CLIENT_MAC,
    FRONT_MAC,
    NO_NEIGH_ENDPOINT,
    ONEARM_ADDR,
    SNAT,
    VIP,
    Ep,
    ProgramRig,
    checksums_ok,
    ct_key,
    echo,
    ep_mac,
    ether,
    ip_bytes,
    mac_bytes,
    parse,
    tcp,
    udp,
)

pytestmark = pytest.mark.lab

EP1 = "192.168.80.101"
SYN = dpkt.tcp.TH_SYN
SYNACK = dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK
ACK = dpkt.tcp.TH_ACK


def assert_ip(
    frame: bytes, src: str, dst: str, sport: int | None = None, dport: int | None = None
) -> dpkt.ip.IP:
    ip = parse(frame).data
    assert (ip.src, ip.dst) == (ip_bytes(src), ip_bytes(dst))
    if sport is not None:
        assert ip.data.sport == sport
    if dport is not None:
        assert ip.data.dport == dport
    assert checksums_ok(frame)
    return ip


def assert_macs(frame: bytes, src: str, dst: str) -> None:
    eth = parse(frame)
    assert (eth.src, eth.dst) == (mac_bytes(src), mac_bytes(dst))


# ---- what passes untouched ------------------------------------------------------------


def test_unknown_vip_passes_untouched(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    frame = ether(tcp(CLIENT, "198.51.100.99", 40000, 80))
    result = dp.run(frame)
    assert result.retval == TC_ACT_OK
    assert result.data == frame
    assert dp.conntrack() == {}


def test_a_frame_for_another_hosts_mac_is_left_to_the_stack(dp: ProgramRig) -> None:
    """A switch flooding unknown unicast (the active node's port went down) hands a backup
    frames for the active's MAC: the backup must not answer for it, even for a service it has."""
    dp.add_service(1, [Ep(EP1, 8080)])
    flooded = ether(tcp(CLIENT, VIP, 40000, 80), dst="02:00:00:00:99:99")
    result = dp.run(flooded)
    assert (result.retval, result.data) == (TC_ACT_OK, flooded)
    assert dp.conntrack() == {}
    assert dp.run(ether(tcp(CLIENT, VIP, 40000, 80))).retval == TC_ACT_REDIRECT  # to FRONT_MAC


def test_other_port_and_protocol_of_a_vip_pass(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    for frame in (ether(tcp(CLIENT, VIP, 40000, 81)), ether(udp(CLIENT, VIP, 40000, 80))):
        result = dp.run(frame)
        assert (result.retval, result.data) == (TC_ACT_OK, frame)
    assert dp.conntrack() == {}


def test_non_ipv4_passes_untouched(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    arp = bytes(
        dpkt.ethernet.Ethernet(
            src=mac_bytes(CLIENT_MAC),
            dst=b"\xff" * 6,
            type=dpkt.ethernet.ETH_TYPE_ARP,
            data=dpkt.arp.ARP(),
        )
    )
    ip6 = bytes(
        dpkt.ethernet.Ethernet(
            src=mac_bytes(CLIENT_MAC),
            dst=mac_bytes(FRONT_MAC),
            type=dpkt.ethernet.ETH_TYPE_IP6,
            data=dpkt.ip6.IP6(nxt=dpkt.ip.IP_PROTO_TCP, hlim=64, data=dpkt.tcp.TCP()),
        )
    )
    for frame in (arp, ip6):
        result = dp.run(frame)
        assert (result.retval, result.data) == (TC_ACT_OK, frame)


def test_non_first_fragment_passes_untouched(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    frame = ether(tcp(CLIENT, VIP, 40000, 80, offset=1480))
    result = dp.run(frame)
    assert (result.retval, result.data) == (TC_ACT_OK, frame)
    assert dp.conntrack() == {}


# ---- the NAT modes ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.DEFAULT, Mode.ONEARM, Mode.FULLNAT])
def test_syn_creates_both_entries_and_reply_is_unnated(dp: ProgramRig, mode: Mode) -> None:
    dp.add_service(1, [Ep(EP1, 8080)], mode=mode, port_base=20000, port_count=1000)
    result = dp.run(ether(tcp(CLIENT, VIP, 40000, 80, flags=SYN)))

    assert result.retval == TC_ACT_REDIRECT
    assert_macs(result.data, BACK_MAC, ep_mac(EP1))
    source = {Mode.DEFAULT: CLIENT, Mode.ONEARM: ONEARM_ADDR, Mode.FULLNAT: SNAT}[mode]
    ip = assert_ip(result.data, source, EP1, dport=8080)
    assert ip.ttl == 63
    sport = ip.data.sport
    if mode is Mode.FULLNAT:
        assert 20000 <= sport < 21000
    else:
        assert sport == 40000

    forward = dp.entry(ct_key(CLIENT, VIP, 40000, 80))
    assert forward is not None
    assert (forward.nat_src, forward.nat_dst) == (be32(source), be32(EP1))
    assert (forward.nat_sport, forward.nat_dport) == (be16(sport), be16(8080))
    assert (forward.state, forward.flags, forward.svc_id, forward.ep_index) == (
        CtState.SYN_SENT,
        0,
        1,
        0,
    )
    reply = dp.entry(ct_key(EP1, source, 8080, sport))
    assert reply is not None
    assert (reply.nat_src, reply.nat_dst) == (be32(VIP), be32(CLIENT))
    assert (reply.nat_sport, reply.nat_dport) == (be16(80), be16(40000))
    assert reply.flags == CT_REPLY
    assert len(dp.conntrack()) == 2

    synack = ether(tcp(EP1, source, 8080, sport, flags=SYNACK), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(synack, ingress="back")
    assert result.retval == TC_ACT_REDIRECT
    assert_macs(result.data, FRONT_MAC, CLIENT_MAC)
    assert_ip(result.data, VIP, CLIENT, 80, 40000)

    data = ether(tcp(CLIENT, VIP, 40000, 80, flags=ACK, payload=b"GET / HTTP/1.0\r\n\r\n"))
    result = dp.run(data)
    assert result.retval == TC_ACT_REDIRECT
    out = assert_ip(result.data, source, EP1, sport, 8080)
    assert out.data.data == b"GET / HTTP/1.0\r\n\r\n"


def test_dsr_rewrites_only_the_mac_and_keeps_no_reply_entry(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 80)], mode=Mode.DSR)
    frame = ether(tcp(CLIENT, VIP, 40000, 80, flags=SYN, payload=b"x"))
    result = dp.run(frame)
    assert result.retval == TC_ACT_REDIRECT
    assert_macs(result.data, BACK_MAC, ep_mac(EP1))
    assert result.data[12:] == frame[12:]  # the IP packet as it was
    entries = dp.conntrack()
    assert len(entries) == 1
    forward = dp.entry(ct_key(CLIENT, VIP, 40000, 80))
    assert forward is not None
    assert forward.flags == CT_DSR
    # the endpoint's address: tracked packets go to it even after it leaves the set (drain)
    assert (forward.nat_src, forward.nat_dst) == (be32(CLIENT), be32(EP1))
    assert bytes(forward.ep_mac) == mac_bytes(ep_mac(EP1))

    result = dp.run(ether(tcp(CLIENT, VIP, 40000, 80, flags=ACK)))
    assert result.retval == TC_ACT_REDIRECT
    assert_macs(result.data, BACK_MAC, ep_mac(EP1))
    entry = dp.entry(ct_key(CLIENT, VIP, 40000, 80))
    assert entry is not None
    assert entry.state == CtState.ESTABLISHED  # the client's ACK: replies bypass the node


def test_dsr_without_a_neighbour_lets_the_kernel_resolve_it(dp: ProgramRig) -> None:
    """DSR cannot leave the packet to the stack (it would deliver it to the local VIP): it is
    redirected with bpf_redirect_neigh, which resolves the endpoint's MAC itself."""
    dp.add_service(1, [Ep(NO_NEIGH_ENDPOINT, 80)], mode=Mode.DSR)
    frame = ether(tcp(CLIENT, VIP, 40000, 80))
    result = dp.run(frame)
    assert result.retval == TC_ACT_REDIRECT
    assert result.data == frame  # the kernel fills the MACs in when it sends


def test_without_a_neighbour_the_rewritten_packet_is_redirected_to_resolve_it(
    dp: ProgramRig,
) -> None:
    """The stack cannot forward it (its source is one of the node's own addresses: a martian),
    so bpf_redirect_neigh resolves the neighbour; MACs are filled in by the kernel then."""
    dp.add_service(1, [Ep(NO_NEIGH_ENDPOINT, 8080)], mode=Mode.FULLNAT)
    frame = ether(tcp(CLIENT, VIP, 40000, 80))
    result = dp.run(frame)
    assert result.retval == TC_ACT_REDIRECT
    assert_macs(result.data, CLIENT_MAC, FRONT_MAC)  # not set by the program
    ip = assert_ip(result.data, SNAT, NO_NEIGH_ENDPOINT, dport=8080)
    assert ip.ttl == 63  # a router hop
    assert dp.entry(ct_key(CLIENT, VIP, 40000, 80)) is not None


def test_onearm_source_without_ifaddrs_is_the_kernels_choice(dp: ProgramRig) -> None:
    dp.prog.table("ifaddrs").clear()
    dp.add_service(1, [Ep(EP1, 8080)], mode=Mode.ONEARM)
    result = dp.run(ether(tcp(CLIENT, VIP, 40000, 80)))
    assert result.retval == TC_ACT_REDIRECT
    assert_ip(result.data, BACK_ADDR, EP1, 40000, 8080)


def test_onearm_moves_the_client_port_only_when_it_collides(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)], mode=Mode.ONEARM, port_base=30000, port_count=100)
    other = "203.0.113.20"
    first = dp.run(ether(tcp(other, VIP, 40000, 80)))
    assert_ip(first.data, ONEARM_ADDR, EP1, 40000, 8080)
    second = dp.run(ether(tcp(CLIENT, VIP, 40000, 80)))
    ip = assert_ip(second.data, ONEARM_ADDR, EP1, dport=8080)
    assert 30000 <= ip.data.sport < 30100
    reply = dp.entry(ct_key(EP1, ONEARM_ADDR, 8080, ip.data.sport))
    assert reply is not None
    assert reply.nat_dst == be32(CLIENT)


def test_fullnat_drops_when_the_port_block_is_full(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)], mode=Mode.FULLNAT, port_base=30000, port_count=1)
    assert dp.run(ether(tcp(CLIENT, VIP, 40000, 80))).retval == TC_ACT_REDIRECT
    result = dp.run(ether(tcp(CLIENT, VIP, 40001, 80)))
    assert result.retval == TC_ACT_SHOT
    assert dp.svc_stats(1).drops == 1


def test_egress_hook_translates_too(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)], mode=Mode.FULLNAT)
    result = dp.run(ether(tcp(CLIENT, VIP, 40000, 80)), ingress=None, egress="front")
    assert result.retval == TC_ACT_REDIRECT
    assert_ip(result.data, SNAT, EP1, dport=8080)


# ---- protocols and headers -------------------------------------------------------------


def test_ip_options_are_skipped(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)], mode=Mode.FULLNAT)
    frame = ether(tcp(CLIENT, VIP, 40000, 80, opts=b"\x01\x01\x01\x00"))
    assert parse(frame).data.hl == 6
    result = dp.run(frame)
    assert result.retval == TC_ACT_REDIRECT
    ip = assert_ip(result.data, SNAT, EP1, dport=8080)
    assert ip.hl == 6


@pytest.mark.parametrize("zero_checksum", [False, True])
def test_udp_translation_and_zero_checksum(dp: ProgramRig, zero_checksum: bool) -> None:
    dp.add_service(2, [Ep(EP1, 5353)], port=53, proto=dpkt.ip.IP_PROTO_UDP, mode=Mode.FULLNAT)
    ip = udp(CLIENT, VIP, 40000, 53)
    raw = bytearray(ether(ip))
    if zero_checksum:
        raw[14 + 20 + 6 : 14 + 20 + 8] = b"\0\0"
    result = dp.run(bytes(raw))
    assert result.retval == TC_ACT_REDIRECT
    out = assert_ip(result.data, SNAT, EP1, dport=5353)
    assert (out.data.sum == 0) is zero_checksum
    forward = dp.entry(ct_key(CLIENT, VIP, 40000, 53, dpkt.ip.IP_PROTO_UDP))
    assert forward is not None
    assert forward.state == CtState.UDP

    reply = ether(udp(EP1, SNAT, 5353, out.data.sport), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(reply, ingress="back")
    assert result.retval == TC_ACT_REDIRECT
    assert_ip(result.data, VIP, CLIENT, 53, 40000)


def test_icmp_echo_to_an_icmp_service(dp: ProgramRig) -> None:
    icmp = dpkt.ip.IP_PROTO_ICMP
    dp.add_service(3, [Ep(EP1, 0)], port=0, proto=icmp, mode=Mode.FULLNAT, port_base=50000)
    result = dp.run(ether(echo(CLIENT, VIP, 7)))
    assert result.retval == TC_ACT_REDIRECT
    ip = assert_ip(result.data, SNAT, EP1)
    ident = ip.data.data.id
    assert ident >= 50000
    forward = dp.entry(ct_key(CLIENT, VIP, 7, 7, icmp))
    assert forward is not None
    assert forward.state == CtState.ICMP
    assert dp.entry(ct_key(EP1, SNAT, ident, ident, icmp)) is not None

    reply = ether(echo(EP1, SNAT, ident, reply=True), src=ep_mac(EP1), dst=BACK_MAC)
    result = dp.run(reply, ingress="back")
    assert result.retval == TC_ACT_REDIRECT
    ip = assert_ip(result.data, VIP, CLIENT)
    assert ip.data.type == dpkt.icmp.ICMP_ECHOREPLY
    assert ip.data.data.id == 7


def test_echo_reply_without_entry_passes(dp: ProgramRig) -> None:
    icmp = dpkt.ip.IP_PROTO_ICMP
    dp.add_service(3, [Ep(EP1, 0)], port=0, proto=icmp)
    frame = ether(echo(CLIENT, VIP, 7, reply=True))
    result = dp.run(frame)
    assert (result.retval, result.data) == (TC_ACT_OK, frame)


def test_the_checksum_check_itself_catches_corruption() -> None:
    good = ether(tcp(CLIENT, VIP, 40000, 80, payload=b"abc"))
    assert checksums_ok(good)
    for offset in (14 + 10, 14 + 20 + 16, len(good) - 1):  # IP check, TCP check, payload
        bad = bytearray(good)
        bad[offset] ^= 0x40
        assert not checksums_ok(bytes(bad))
