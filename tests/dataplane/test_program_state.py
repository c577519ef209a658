"""lb.c under BPF_PROG_TEST_RUN: TCP states, expiry, counters, connection events."""

from __future__ import annotations

import ctypes
import time

import dpkt
import pytest

from bpf.layout import (
    CT_REPORTED,
    CT_TIMEOUT_S,
    EV_CLOSED,
    EV_ESTABLISHED,
    EV_NEW,
    CtState,
    Mode,
    Selection,
    Settings,
    be16,
    be32,
)
from bpf.testrun import TC_ACT_REDIRECT
from tests.dataplane.conftest import (
    BACK_MAC,
    CLIENT,
    SNAT,
    VIP,
    Ep,
    ProgramRig,
    ct_key,
    ep_mac,
    ether,
    parse,
    tcp,
    udp,
)

pytestmark = pytest.mark.lab

EP1, EP2 = "192.168.80.101", "192.168.80.102"
SYN, ACK, FIN, RST = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST
FWD = ct_key(CLIENT, VIP, 40000, 80)
REPLY = ct_key(EP1, CLIENT, 8080, 40000)


def client(rig: ProgramRig, flags: int, sport: int = 40000, payload: bytes = b"") -> int:
    result = rig.run(ether(tcp(CLIENT, VIP, sport, 80, flags=flags, payload=payload)))
    return result.retval


def endpoint(rig: ProgramRig, flags: int, payload: bytes = b"") -> int:
    frame = ether(
        tcp(EP1, CLIENT, 8080, 40000, flags=flags, payload=payload), src=ep_mac(EP1), dst=BACK_MAC
    )
    return rig.run(frame, ingress="back").retval


def states(rig: ProgramRig) -> tuple[int, int]:
    forward, reply = rig.entry(FWD), rig.entry(REPLY)
    assert forward is not None
    assert reply is not None
    return forward.state, reply.state


def test_tcp_lifecycle_states_events_and_counters(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    assert client(dp, SYN) == TC_ACT_REDIRECT
    assert states(dp) == (CtState.SYN_SENT, CtState.SYN_SENT)
    assert dp.ep_active(1, 0) == 1
    [new] = dp.events()
    assert new.type == EV_NEW
    assert bytes(new.key) == bytes(FWD)
    assert new.entry.nat_dst == be32(EP1)

    assert endpoint(dp, SYN | ACK) == TC_ACT_REDIRECT
    assert states(dp) == (CtState.ESTABLISHED, CtState.ESTABLISHED)
    [established] = dp.events()
    assert established.type == EV_ESTABLISHED
    assert bytes(established.key) == bytes(FWD)
    forward = dp.entry(FWD)
    assert forward is not None
    assert forward.flags & CT_REPORTED

    client(dp, ACK, payload=b"hello")
    endpoint(dp, ACK, payload=b"world!")
    assert dp.events() == []  # established is reported once

    client(dp, FIN | ACK)
    assert states(dp) == (CtState.FIN_WAIT, CtState.FIN_WAIT)
    assert dp.events() == []
    endpoint(dp, FIN | ACK)
    assert states(dp) == (CtState.CLOSED, CtState.CLOSED)
    [closed] = dp.events()
    assert closed.type == EV_CLOSED
    assert bytes(closed.key) == bytes(FWD)
    assert dp.ep_active(1, 0) == 0
    client(dp, ACK)  # the last ACK: still translated, nothing more to report
    assert dp.events() == []
    assert dp.ep_active(1, 0) == 0

    forward, reply = dp.entry(FWD), dp.entry(REPLY)
    assert forward is not None
    assert reply is not None
    assert (forward.packets, reply.packets) == (4, 3)
    assert forward.bytes == 4 * 54 + len(b"hello")
    assert reply.bytes == 3 * 54 + len(b"world!")
    assert forward.last_ns == reply.last_ns  # the pair ages together
    svc = dp.svc_stats(1)
    assert (svc.packets, svc.conns, svc.drops) == (7, 1, 0)
    assert svc.bytes == forward.bytes + reply.bytes
    ep = dp.ep_stats(1, 0)
    assert (ep.packets, ep.conns) == (7, 1)


@pytest.mark.parametrize("from_endpoint", [False, True])
def test_rst_closes(dp: ProgramRig, from_endpoint: bool) -> None:
    dp.add_service(1, [Ep(EP1, 8080)])
    client(dp, SYN)
    endpoint(dp, SYN | ACK)
    dp.events()
    if from_endpoint:
        endpoint(dp, RST)
    else:
        client(dp, RST | ACK)
    assert states(dp) == (CtState.CLOSED, CtState.CLOSED)
    assert [e.type for e in dp.events()] == [EV_CLOSED]
    assert dp.ep_active(1, 0) == 0


def test_midstream_packet_without_entry_creates_an_established_one(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080), Ep(EP2, 8080)], selection=Selection.MAGLEV)
    assert client(dp, ACK, payload=b"data") == TC_ACT_REDIRECT
    forward = dp.entry(FWD)
    assert forward is not None
    assert forward.state == CtState.ESTABLISHED
    assert [e.type for e in dp.events()] == [EV_NEW, EV_ESTABLISHED]

    # the same flow after a failover without sync (empty table): the same endpoint
    chosen = forward.ep_index
    dp.prog.table("conntrack").clear()
    client(dp, ACK, payload=b"more")
    again = dp.entry(FWD)
    assert again is not None
    assert again.ep_index == chosen


def test_expired_entry_counts_as_absent(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080), Ep(EP2, 8080)])  # round robin
    client(dp, SYN)
    forward = dp.entry(FWD)
    assert forward is not None
    assert forward.ep_index == 0
    dp.events()
    # idle beyond the SYN_SENT timeout (bpf_ktime_get_ns is CLOCK_MONOTONIC)
    forward.last_ns = time.monotonic_ns() - (CT_TIMEOUT_S[CtState.SYN_SENT] + 5) * 10**9
    dp.put_entry(FWD, forward)

    client(dp, SYN)
    renewed = dp.entry(FWD)
    assert renewed is not None
    assert renewed.ep_index == 1  # a new connection: the next endpoint
    assert [e.type for e in dp.events()] == [EV_CLOSED, EV_NEW]  # the stale one is closed
    assert (dp.ep_active(1, 0), dp.ep_active(1, 1)) == (0, 1)


def test_syn_after_close_opens_a_new_connection(dp: ProgramRig) -> None:
    dp.add_service(1, [Ep(EP1, 8080), Ep(EP2, 8080)])
    client(dp, SYN)
    client(dp, RST)
    dp.events()
    client(dp, SYN)
    forward = dp.entry(FWD)
    assert forward is not None
    assert (forward.state, forward.ep_index) == (CtState.SYN_SENT, 1)
    assert [e.type for e in dp.events()] == [EV_NEW]
    assert (dp.ep_active(1, 0), dp.ep_active(1, 1)) == (0, 1)


def test_udp_reports_established_on_the_first_reply(dp: ProgramRig) -> None:
    proto = dpkt.ip.IP_PROTO_UDP
    dp.add_service(2, [Ep(EP1, 5353)], port=53, proto=proto, mode=Mode.FULLNAT)
    out = parse(dp.run(ether(udp(CLIENT, VIP, 40000, 53))).data).data
    assert [e.type for e in dp.events()] == [EV_NEW]
    for _ in range(2):
        reply = ether(udp(EP1, SNAT, 5353, out.data.sport), src=ep_mac(EP1), dst=BACK_MAC)
        assert dp.run(reply, ingress="back").retval == TC_ACT_REDIRECT
    [established] = dp.events()
    assert established.type == EV_ESTABLISHED
    assert bytes(established.key) == bytes(ct_key(CLIENT, VIP, 40000, 53, proto))
    assert established.entry.state == CtState.UDP
    assert established.entry.nat_sport == be16(out.data.sport)


def test_events_only_while_enabled(dp: ProgramRig) -> None:
    """Without SETTINGS_EVENTS (no conntrack sync reading them) connections emit nothing."""
    settings = dp.prog.table("settings")
    key = ctypes.c_uint32(0)
    enabled = settings[key]
    settings[key] = Settings(version=enabled.version, node_id=enabled.node_id, flags=0)
    try:
        dp.add_service(1, [Ep(EP1, 8080)])
        assert client(dp, SYN) == TC_ACT_REDIRECT
        assert states(dp) == (CtState.SYN_SENT, CtState.SYN_SENT)
        assert dp.events() == []
    finally:
        settings[key] = enabled
