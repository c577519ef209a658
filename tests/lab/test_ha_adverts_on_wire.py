"""Hostile VRRP adverts on the wire change nothing. From the client (on the nodes' segment) a
raw socket with IP_HDRINCL sends priority-254 adverts for the group to 224.0.0.18: signed with
a wrong key (from a spoofed node address and from the client's own), under a key id the group
does not know, unsigned, a genuine advert
of the master captured and replayed, and a correctly signed one with TTL 64. Each is rejected
and counted by reason in `show ha`; the master stays master, the backup backup, the VIP where it
was. A handful of packets per case; every wait is a bounded poll."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import NODE_ADDRESSES
from tests.lab.support.ha import (
    CLIENT,
    HA_KEY,
    VIP,
    VRID,
    node_config,
    show_ha,
    two_nodes,
    vip_holders,
    wait_until,
)

pytestmark = pytest.mark.lab

NODES = ("node1", "node2")
NODE1, NODE2 = NODE_ADDRESSES["node1"], NODE_ADDRESSES["node2"]
COUNT = 2  # packets per case
COUNT_WAIT_S = 5.0

# argv: kind (forged | unknown-key | unsigned | ttl64 | replay), source address, count, key
# file, VRID, VIP. "forged" signs with a wrong secret under the genuine key's id.
# Run in the client's namespace; the repo root is on PYTHONPATH there (lab_env).
SENDER = """
import ipaddress, json, socket, struct, sys, time
from pathlib import Path
from appliance.ha import wire
from appliance.ha.keyfile import read_auth_keys

kind, src, count, key_file = sys.argv[1], ipaddress.IPv4Address(sys.argv[2]), int(sys.argv[3]), \\
    Path(sys.argv[4])
vrid, vip, ifname = int(sys.argv[5]), ipaddress.IPv4Address(sys.argv[6]), "eth0"
dst = wire.VRRP_GROUP_V4
ETH_P_IP, PACKET_OUTGOING = 0x0800, 4

def packet(payload, ttl):
    # IPv4 header, no options; the kernel fills in the checksum (IP_HDRINCL), nothing else
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(payload), 0, 0, ttl,
                         wire.IPPROTO_VRRP, 0, src.packed, dst.packed)
    return header + payload

def capture(timeout):
    # a genuine advert from `src` as the client's eth0 sees it (AF_PACKET, IP layer and up)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    s.bind((ifname, ETH_P_IP))
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            data, address = s.recvfrom(4096)
        except TimeoutError:
            break
        if address[2] == PACKET_OUTGOING or len(data) < 20:
            continue
        if data[9] == wire.IPPROTO_VRRP and data[12:16] == src.packed and data[8] == wire.TTL:
            return data[: struct.unpack_from("!H", data, 2)[0]]
    sys.exit(f"no advert from {src} captured in {timeout}s")

right = read_auth_keys(key_file)  # the daemon's own reading of the key file, key id included
advert = wire.Advert(vrid, 254, 10, (vip,))
if kind in ("forged", "unknown-key"):
    key_id = right.current.id if kind == "forged" else (right.current.id + 1) % 256
    wrong = wire.AuthKeys(wire.AuthKey(key_id, b"wrong"))
    packets = [packet(wire.encode(advert, src, dst, auth=wrong, counter=time.time_ns() + i), 255)
               for i in range(count)]
elif kind == "unsigned":
    packets = [packet(wire.encode(advert, src, dst), 255)] * count
elif kind == "ttl64":  # valid in every other respect: accepted, it would preempt the master
    packets = [packet(wire.encode(advert, src, dst, auth=right, counter=time.time_ns() + i), 64)
               for i in range(count)]
    for p in packets:
        wire.decode(p[20:], src, dst, auth=right)
elif kind == "replay":
    genuine = capture(5.0)
    wire.decode(genuine[20:], src, dst, auth=right)  # really the master's, signed
    time.sleep(0.3)  # the master has sent newer ones since
    packets = [genuine] * count
else:
    sys.exit(f"unknown kind {kind}")

s = socket.socket(socket.AF_INET, socket.SOCK_RAW, wire.IPPROTO_VRRP)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
for p in packets:
    s.sendto(p, (str(dst), 0))
    time.sleep(0.02)
print(json.dumps({"sent": len(packets), "bytes": [p.hex() for p in packets]}))
"""


def _send(handle: LabHandle, kind: str, src: str) -> int:
    argv = [sys.executable, "-c", SENDER, kind, src, str(COUNT), str(HA_KEY), str(VRID), VIP]
    result = handle.exec("client", argv, timeout=15)
    assert result.returncode == 0, f"sender {kind} from {src}: {result.stderr}"
    sent = json.loads(result.stdout)["sent"]
    assert sent == COUNT
    return int(sent)


def _snapshot(handle: LabHandle) -> dict[str, dict[str, Any]]:
    return {node: show_ha(handle, node) for node in NODES}


def _rejected(group: dict[str, Any], reason: str) -> int:
    return int(group["rejected"].get(reason, 0))


@pytest.mark.parametrize(
    ("kind", "src", "reason", "counted_by"),
    [
        # node2 never sees its own address as a source (the kernel drops such packets)
        pytest.param("forged", NODE2, "auth-forged", ("node1",), id="wrong-key-spoofed-node2"),
        pytest.param("forged", CLIENT, "auth-forged", NODES, id="wrong-key-from-client"),
        pytest.param("unknown-key", CLIENT, "auth-unknown-key", NODES, id="unknown-key-id"),
        pytest.param("unsigned", CLIENT, "auth-missing", NODES, id="unsigned"),
        # node1's own advert comes back to node1 with its own source: dropped by its kernel
        pytest.param("replay", NODE1, "auth-replayed", ("node2",), id="replayed-master-advert"),
        pytest.param("ttl64", CLIENT, "bad-ttl", NODES, id="ttl-64"),
    ],
)
def test_hostile_advert_is_rejected_and_changes_nothing(
    lab_factory: Callable[..., LabHandle],
    tmp_path: Path,
    kind: str,
    src: str,
    reason: str,
    counted_by: tuple[str, ...],
) -> None:
    # multicast adverts (no unicast peers): the client sees the master's adverts, and a unicast
    # group would reject an advert from the client as "unknown-peer" before any key check
    configs = {node: node_config(tmp_path, node, unicast_peers=[]) for node in NODES}
    handle, _, _ = two_nodes(lab_factory, configs)
    before = _snapshot(handle)
    assert before["node1"]["role"] == "active" and before["node2"]["role"] == "backup"

    sent = _send(handle, kind, src)

    def counted() -> bool:
        now = _snapshot(handle)
        return all(
            _rejected(now[node], reason) - _rejected(before[node], reason) >= sent
            for node in counted_by
        )

    wait_until(f"{sent} '{reason}' rejections on {', '.join(counted_by)}", counted, COUNT_WAIT_S)
    after = _snapshot(handle)
    assert after["node1"]["role"] == "active" and after["node1"]["state"] == "master"
    assert after["node2"]["role"] == "backup"
    assert after["node2"]["master_address"] == NODE1
    for node in NODES:
        assert after[node]["transitions"] == before[node]["transitions"], node
    # node1 (master) hears no genuine advert at all: it accepted none of ours either
    assert after["node1"]["received"] == before["node1"]["received"]
    assert after["node2"]["received"] > before["node2"]["received"]  # node1's, still accepted
    assert vip_holders(handle) == ["node1"]
