"""Harness for the eBPF program tests: the real program, run by BPF_PROG_TEST_RUN.

- ``program`` (session): ``lb.c`` compiled and loaded once by bcc (unpinned maps), with the
  ring buffer of events opened.
- ``netns`` (session): a network namespace ``tlbprog-<pid>`` holding one veth pair whose ends
  play the node's two sides: ``front`` (client side, 203.0.113.1/24) and ``back`` (endpoint
  side, 192.168.80.252/24), with permanent neighbours for the client and endpoints .101-.104
  (.109 has none: its FIB lookup stops at "no neighbour"), and forwarding on. Test runs
  happen in a thread that entered it, so ``bpf_fib_lookup`` sees its routes. Deleted at the
  end, whatever happened.
- ``dp`` (per test): a `ProgramRig` over both, with the maps emptied first.

Packets are built with dpkt (checksums computed by dpkt); checksums of the program's output
are verified by hand (`checksums_ok`).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import dpkt
import pytest

from bpf.layout import (
    EP_ACTIVE,
    LAYOUT_VERSION,
    MAX_ENDPOINTS,
    SETTINGS_EVENTS,
    SLOTS,
    CtEntry,
    CtEvent,
    CtKey,
    Endpoint,
    EndpointSet,
    Mode,
    Selection,
    SelectTable,
    Service,
    Settings,
    Stats,
    SvcKey,
    be16,
    be32,
)
from bpf.selection import Candidate, build_table
from bpf.source import INGRESS_FUNCTION, program_text
from bpf.testrun import RunResult, SkBuff, prog_test_run, run_in_netns

FRONT_MAC = "02:aa:00:00:00:01"
BACK_MAC = "02:bb:00:00:00:01"
CLIENT = "203.0.113.10"
CLIENT_MAC = "02:c1:00:00:00:0a"
FRONT_ADDR = "203.0.113.1"
BACK_ADDR = "192.168.80.252"
#: what the tests put in ``ifaddrs`` for ``back`` (not its real address, to tell them apart)
ONEARM_ADDR = "192.168.80.251"
VIP = "198.51.100.10"
SNAT = "198.51.100.250"
ENDPOINTS = ["192.168.80.101", "192.168.80.102", "192.168.80.103", "192.168.80.104"]
NO_NEIGH_ENDPOINT = "192.168.80.109"


def ep_mac(address: str) -> str:
    return f"02:e0:00:00:00:{int(address.rsplit('.', 1)[1]):02x}"


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def ip_bytes(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


# ---- the namespace ---------------------------------------------------------------------


@attrs.frozen
class Netns:
    name: str
    path: str
    ifindex: dict[str, int]


def _ip(ns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True, timeout=10)


def _build_netns(name: str) -> Netns:
    _ip(name, "link", "set", "lo", "up")
    _ip(name, "link", "add", "front", "address", FRONT_MAC, "type", "veth", "peer", "name", "back")
    _ip(name, "link", "set", "back", "address", BACK_MAC)
    _ip(name, "addr", "add", f"{FRONT_ADDR}/24", "dev", "front")
    _ip(name, "addr", "add", f"{BACK_ADDR}/24", "dev", "back")
    _ip(name, "link", "set", "front", "up")
    _ip(name, "link", "set", "back", "up")
    _ip(name, "neigh", "add", CLIENT, "lladdr", CLIENT_MAC, "dev", "front", "nud", "permanent")
    for address in ENDPOINTS:
        _ip(
            name,
            "neigh",
            "add",
            address,
            "lladdr",
            ep_mac(address),
            "dev",
            "back",
            "nud",
            "permanent",
        )
    subprocess.run(
        ["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
        check=True,
        capture_output=True,
        timeout=10,
    )
    links = json.loads(
        subprocess.run(
            ["ip", "-n", name, "-j", "link", "show"],
            check=True,
            capture_output=True,
            timeout=10,
            text=True,
        ).stdout
    )
    return Netns(name, f"/run/netns/{name}", {link["ifname"]: link["ifindex"] for link in links})


def _remove_stale_namespaces() -> None:
    """Namespaces of earlier runs whose process died before its clean-up (a killed run)."""
    for entry in Path("/run/netns").glob("tlbprog-*"):
        pid = entry.name.removeprefix("tlbprog-")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "delete", entry.name], check=False, timeout=10)


@pytest.fixture(scope="session")
def netns() -> Iterator[Netns]:
    if os.geteuid() != 0:
        pytest.fail("program tests need root (namespaces, BPF)")
    _remove_stale_namespaces()
    name = f"tlbprog-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        yield _build_netns(name)
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False, timeout=10)


# ---- the program -----------------------------------------------------------------------


@attrs.define
class Program:
    bpf: Any  # bcc.BPF
    fd: int
    events: list[CtEvent]

    def table(self, name: str) -> Any:
        return self.bpf[name.encode()]


@pytest.fixture(scope="session")
def program() -> Program:
    from bcc import BPF

    bpf = BPF(text=program_text(None).encode())
    fn = bpf.load_func(INGRESS_FUNCTION.encode(), BPF.SCHED_CLS)
    events: list[CtEvent] = []

    def on_event(_ctx: Any, data: Any, size: int) -> None:
        events.append(CtEvent.from_buffer_copy(ctypes.string_at(data, size)))

    bpf[b"events"].open_ring_buffer(on_event)
    # events on, as while conntrack sync reads them (test_events_only_while_enabled: off)
    settings = Settings(version=LAYOUT_VERSION, node_id=1, flags=SETTINGS_EVENTS)
    bpf[b"settings"][ctypes.c_uint32(0)] = settings
    return Program(bpf, fn.fd, events)


# ---- packets ---------------------------------------------------------------------------


def ether(ip: dpkt.ip.IP, src: str = CLIENT_MAC, dst: str = FRONT_MAC) -> bytes:
    eth = dpkt.ethernet.Ethernet(
        src=mac_bytes(src), dst=mac_bytes(dst), type=dpkt.ethernet.ETH_TYPE_IP, data=ip
    )
    return bytes(eth)


def ipv4(src: str, dst: str, payload: dpkt.Packet, proto: int, **fields: Any) -> dpkt.ip.IP:
    ip = dpkt.ip.IP(src=ip_bytes(src), dst=ip_bytes(dst), p=proto, ttl=64, data=payload, **fields)
    ip.hl = 5 + len(ip.opts) // 4
    ip.len = ip.__hdr_len__ + len(ip.opts) + len(bytes(payload))
    return ip


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int = dpkt.tcp.TH_SYN,
    payload: bytes = b"",
    **ip_fields: Any,
) -> dpkt.ip.IP:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=1000, ack=0, win=65535)
    seg.data = payload
    return ipv4(src, dst, seg, dpkt.ip.IP_PROTO_TCP, **ip_fields)


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"hello") -> dpkt.ip.IP:
    dgram = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    dgram.ulen = len(bytes(dgram))
    return ipv4(src, dst, dgram, dpkt.ip.IP_PROTO_UDP)


def echo(src: str, dst: str, ident: int, reply: bool = False) -> dpkt.ip.IP:
    msg = dpkt.icmp.ICMP(
        type=dpkt.icmp.ICMP_ECHOREPLY if reply else dpkt.icmp.ICMP_ECHO,
        data=dpkt.icmp.ICMP.Echo(id=ident, seq=1, data=b"ping"),
    )
    return ipv4(src, dst, msg, dpkt.ip.IP_PROTO_ICMP)


def frag_needed(src: str, dst: str, quoted: dpkt.ip.IP, mtu: int = 1400) -> dpkt.ip.IP:
    """ICMP "fragmentation needed" from ``src`` to ``dst`` quoting ``quoted`` (IP header + the
    first 8 bytes of its payload, as routers do)."""
    raw = bytes(quoted)
    body = dpkt.icmp.ICMP.Unreach(mtu=mtu, data=raw[: quoted.hl * 4 + 8])
    msg = dpkt.icmp.ICMP(
        type=dpkt.icmp.ICMP_UNREACH, code=dpkt.icmp.ICMP_UNREACH_NEEDFRAG, data=body
    )
    return ipv4(src, dst, msg, dpkt.ip.IP_PROTO_ICMP)


def ct_key(src: str, dst: str, sport: int, dport: int, proto: int = dpkt.ip.IP_PROTO_TCP) -> CtKey:
    return CtKey(src=be32(src), dst=be32(dst), sport=be16(sport), dport=be16(dport), proto=proto)


def parse(frame: bytes) -> dpkt.ethernet.Ethernet:
    return dpkt.ethernet.Ethernet(frame)


def _ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ip_header_ok(header: bytes) -> bool:
    return _ones_sum(header) == 0xFFFF


def checksums_ok(frame: bytes) -> bool:
    """IPv4 header checksum and the L4 checksum (TCP/UDP over the pseudo header, ICMP over the
    message; a UDP checksum of 0 means "none" and passes)."""
    eth = parse(frame)
    ip = eth.data
    raw_ip = bytes(frame[14:])
    hl = ip.hl * 4
    if not ip_header_ok(raw_ip[:hl]):
        return False
    l4 = raw_ip[hl : ip.len]
    if ip.p == dpkt.ip.IP_PROTO_ICMP:
        return _ones_sum(l4) == 0xFFFF
    if ip.p == dpkt.ip.IP_PROTO_UDP and l4[6:8] == b"\0\0":
        return True
    pseudo = raw_ip[12:20] + bytes([0, ip.p]) + len(l4).to_bytes(2, "big")
    return _ones_sum(pseudo + l4) == 0xFFFF


# ---- the dataplane ---------------------------------------------------------------------


@attrs.frozen
class Ep:
    """An endpoint of a test service."""

    addr: str
    port: int
    weight: int = 1
    active: bool = True


@attrs.define
class ProgramRig:
    """The program and its maps, as the tests use them."""

    prog: Program
    ns: Netns
    used_ids: set[int] = attrs.field(factory=set)

    # maps ------------------------------------------------------------------------------

    def add_service(
        self,
        svc_id: int,
        endpoints: Sequence[Ep],
        *,
        vip: str = VIP,
        port: int = 80,
        proto: int = dpkt.ip.IP_PROTO_TCP,
        mode: Mode = Mode.DEFAULT,
        selection: Selection = Selection.ROUNDROBIN,
        snat: str = SNAT,
        port_base: int = 0,
        port_count: int = 0,
        persist_timeout_s: int = 0,
        table: Sequence[int] | None = None,
        slot: int = 0,
    ) -> None:
        self.used_ids.add(svc_id)
        eps = EndpointSet(count=len(endpoints))
        for i, ep in enumerate(endpoints):
            eps.eps[i] = Endpoint(
                addr=be32(ep.addr),
                port=be16(ep.port),
                weight=ep.weight,
                flags=EP_ACTIVE if ep.active else 0,
            )
            eps.eps[i].mac[:] = list(mac_bytes(ep_mac(ep.addr)))
        if table is None:
            candidates = [
                Candidate(i, f"{ep.addr}:{ep.port}", ep.weight)
                for i, ep in enumerate(endpoints)
                if ep.active
            ]
            table = build_table(selection, candidates)
        tab = SelectTable(size=len(table))
        for i, ep_index in enumerate(table):
            tab.entries[i] = ep_index
        slot_key = ctypes.c_uint32(svc_id * SLOTS + slot)
        self.prog.table("endpoints")[slot_key] = eps
        self.prog.table("tables")[slot_key] = tab
        svc = Service(
            id=svc_id,
            mode=mode,
            selection=selection,
            slot=slot,
            snat_addr=be32(snat),
            persist_timeout_s=persist_timeout_s,
            port_base=port_base,
            port_count=port_count,
        )
        self.prog.table("services")[SvcKey(vip=be32(vip), port=be16(port), proto=proto)] = svc

    def set_ifaddr(self, ifname: str, address: str) -> None:
        key = ctypes.c_uint32(self.ns.ifindex[ifname])
        self.prog.table("ifaddrs")[key] = ctypes.c_uint32(be32(address))

    def conntrack(self) -> dict[bytes, tuple[CtKey, CtEntry]]:
        """Every conntrack entry, by its key's bytes."""
        out = {}
        for key, value in self.prog.table("conntrack").items():
            k = CtKey.from_buffer_copy(bytes(key))
            out[bytes(k)] = (k, CtEntry.from_buffer_copy(bytes(value)))
        return out

    def entry(self, key: CtKey) -> CtEntry | None:
        table = self.prog.table("conntrack")
        try:
            value = table[key]
        except KeyError:
            return None
        return CtEntry.from_buffer_copy(bytes(value))

    def put_entry(self, key: CtKey, entry: CtEntry) -> None:
        self.prog.table("conntrack")[key] = entry

    def ep_active(self, svc_id: int, ep_index: int) -> int:
        value = self.prog.table("ep_active")[ctypes.c_uint32(svc_id * MAX_ENDPOINTS + ep_index)]
        return int(ctypes.c_int64(value.value).value)

    def svc_stats(self, svc_id: int) -> Stats:
        return self._stats("svc_stats", svc_id)

    def ep_stats(self, svc_id: int, ep_index: int) -> Stats:
        return self._stats("ep_stats", svc_id * MAX_ENDPOINTS + ep_index)

    def _stats(self, name: str, index: int) -> Stats:
        total = Stats()
        for per_cpu in self.prog.table(name)[ctypes.c_uint32(index)]:
            for field in ("packets", "bytes", "conns", "drops"):
                setattr(total, field, getattr(total, field) + getattr(per_cpu, field))
        return total

    def events(self) -> list[CtEvent]:
        """Events the program sent since the last call."""
        self.prog.bpf.ring_buffer_consume()
        out = list(self.prog.events)
        self.prog.events.clear()
        return out

    def reset(self) -> None:
        for name in ("conntrack", "persist", "services", "ifaddrs"):
            self.prog.table(name).clear()
        for svc_id in self.used_ids:
            self.prog.table("rr_state").clearitem(svc_id)
            self.prog.table("svc_stats").clearitem(svc_id)
            for ep in range(MAX_ENDPOINTS):
                self.prog.table("ep_active").clearitem(svc_id * MAX_ENDPOINTS + ep)
                self.prog.table("ep_stats").clearitem(svc_id * MAX_ENDPOINTS + ep)
        self.used_ids.clear()
        self.events()

    # running ---------------------------------------------------------------------------

    def run(
        self, frame: bytes, ingress: str | None = "front", egress: str | None = None
    ) -> RunResult:
        """Run the program on ``frame`` as received on ``ingress`` (TC ingress), or, with
        ``egress``, as sent out of that interface by the node itself (TC egress)."""
        ctx = SkBuff()
        if egress is not None:
            ctx.ifindex = self.ns.ifindex[egress]
        elif ingress is not None:
            ctx.ifindex = ctx.ingress_ifindex = self.ns.ifindex[ingress]
        return run_in_netns(self.ns.path, lambda: prog_test_run(self.prog.fd, frame, ctx=ctx))


@pytest.fixture
def dp(program: Program, netns: Netns) -> Iterator[ProgramRig]:
    plane = ProgramRig(program, netns)
    plane.reset()
    plane.set_ifaddr("back", ONEARM_ADDR)
    yield plane
    plane.reset()
