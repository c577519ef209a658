"""Synthetic local connections written into node1's pinned conntrack map (the volume test).

Opening 100,000 real connections through the VIP takes far longer than the transfer being
measured, so the volume test writes them: forward entries of node1's configured full-NAT
services, spread over every (service, endpoint) pair with the endpoint's real index (the pairs
of the TCP echo service, where the lag test opens real connections, get at most a quarter of
their source ports, see `quotas`), translated as node1's program would (source = the service's
floating source address, source port a random sample of node1's block ``port_base ..
port_base + port_count``), state ESTABLISHED (UDP for the UDP service), flagged reported (their
"established" event was sent), each with its reply entry (`bpf.conntrack.reply_of`). Clients
are 203.0.113.128+ (no such hosts: no packet is ever sent for them). node1's ``ep_active``
counters are raised by the count per endpoint, as the program does for a new connection. They
are local to node1, so node1's bulk resync pushes them exactly like real ones; nothing
generated them as events, so they say nothing about the incremental path (the lag test covers
that with real connections).
"""

from __future__ import annotations

import ctypes
import ipaddress
import random
import time
from typing import Any

import attrs

from bpf.conntrack import CtTuple, reply_of
from bpf.layout import (
    CT_REPORTED,
    EP_ACTIVE,
    MAX_ENDPOINTS,
    CtEntry,
    CtKey,
    CtState,
    Mode,
    be16,
    from_be16,
    from_be32,
)
from bpf.maps import Maps
from bpf.programmer import slot_index

FIRST_CLIENT = ipaddress.IPv4Address("203.0.113.128")
CLIENT_PORTS = 64_000
UDP = 17
TCP = 6
SEED = 7


@attrs.frozen
class Pair:
    """One (service, endpoint) of node1's maps, with what a full-NAT entry needs."""

    svc_id: int
    vip: ipaddress.IPv4Address
    port: int
    proto: int
    snat: int  # network order, as in the map
    port_base: int
    port_count: int
    ep_index: int
    ep_addr: int  # network order
    ep_port: int  # network order


def fullnat_pairs(maps: Maps) -> list[Pair]:
    """Every active endpoint of every full-NAT service programmed in ``maps``."""
    pairs = []
    for key, service in maps.services.items():
        if service.mode != Mode.FULLNAT or not service.port_count:
            continue
        endpoints = maps.endpoints.lookup(ctypes.c_uint32(slot_index(service.id, service.slot)))
        if endpoints is None:
            continue
        for index in range(min(int(endpoints.count), MAX_ENDPOINTS)):
            endpoint = endpoints.eps[index]
            if not endpoint.flags & EP_ACTIVE:
                continue
            pairs.append(
                Pair(
                    svc_id=int(service.id),
                    vip=from_be32(key.vip),
                    port=from_be16(key.port),
                    proto=int(key.proto),
                    snat=int(service.snat_addr),
                    port_base=int(service.port_base),
                    port_count=int(service.port_count),
                    ep_index=index,
                    ep_addr=int(endpoint.addr),
                    ep_port=int(endpoint.port),
                )
            )
    pairs.sort(key=lambda p: (p.svc_id, p.ep_index))
    return pairs


def capacity(pairs: list[Pair]) -> int:
    """How many full-NAT connections these pairs can hold without a reply-key collision."""
    return sum(p.port_count for p in pairs)


def quotas(pairs: list[Pair], count: int, probe_port: int, probe_share: float) -> list[int]:
    """Connections per pair: at most ``probe_share`` of the source ports of the pairs of the
    TCP service on ``probe_port`` (the lag test opens real connections there, and the program
    tries only 8 source ports from a flow hash: at occupancy r about r**8 of new connections
    find none), the rest spread evenly over the other pairs."""
    probed = [p.proto == TCP and p.port == probe_port for p in pairs]
    out = [int(p.port_count * probe_share) if probed[i] else 0 for i, p in enumerate(pairs)]
    left = count - sum(out)
    if left < 0:  # a small volume: spread it over all pairs
        return [count // len(pairs) + (i < count % len(pairs)) for i in range(len(pairs))]
    others = [i for i in range(len(pairs)) if not probed[i]] or list(range(len(pairs)))
    for n, i in enumerate(others):
        out[i] += left // len(others) + (n < left % len(others))
    for pair, quota in zip(pairs, out, strict=True):
        if quota > pair.port_count:
            raise ValueError(
                f"{count} connections do not fit {len(pairs)} full-NAT endpoint pairs "
                f"({capacity(pairs)} source ports in all)"
            )
    return out


def build(
    pairs: list[Pair], count: int, now_ns: int, probe_port: int, probe_share: float
) -> list[tuple[CtKey, CtEntry]]:
    """``count`` forward (key, entry) pairs. Each pair's source ports are a seeded random
    sample of its block (the program picks them from a flow hash, so real ones are spread)."""
    out = []
    i = 0
    for pair, quota in zip(pairs, quotas(pairs, count, probe_port, probe_share), strict=True):
        ports = random.Random(SEED + pair.svc_id * 1000 + pair.ep_index).sample(
            range(pair.port_count), quota
        )
        for offset in ports:
            client = FIRST_CLIENT + i // CLIENT_PORTS
            sport = 1024 + i % CLIENT_PORTS
            key = CtTuple(client, pair.vip, sport, pair.port, pair.proto).to_key()
            entry = CtEntry()
            entry.nat_src = pair.snat
            entry.nat_dst = pair.ep_addr
            entry.nat_sport = be16(pair.port_base + offset)
            entry.nat_dport = pair.ep_port
            entry.svc_id = pair.svc_id
            entry.ep_index = pair.ep_index
            entry.state = CtState.UDP if pair.proto == UDP else CtState.ESTABLISHED
            entry.flags = CT_REPORTED
            entry.created_ns = now_ns
            entry.last_ns = now_ns
            entry.packets = 3
            entry.bytes = 180
            out.append((key, entry))
            i += 1
    return out


def fill(maps: Maps, count: int, probe_port: int, probe_share: float) -> dict[str, Any]:
    """Write ``count`` synthetic connections (forward + reply entries) into ``maps``."""
    pairs = fullnat_pairs(maps)
    if not pairs:
        raise RuntimeError("node1 has no full-NAT service with active endpoints programmed")
    started = time.monotonic()
    entries = build(pairs, count, time.monotonic_ns(), probe_port, probe_share)
    per_endpoint: dict[int, int] = {}
    for key, entry in entries:
        reply_key, reply = reply_of(key, entry)
        maps.conntrack.update(reply_key, reply)
        maps.conntrack.update(key, entry)
        index = int(entry.svc_id) * MAX_ENDPOINTS + int(entry.ep_index)
        per_endpoint[index] = per_endpoint.get(index, 0) + 1
    for index, added in per_endpoint.items():
        slot = ctypes.c_uint32(index)
        current = maps.ep_active.lookup(slot)
        if current is not None:
            maps.ep_active.update(slot, ctypes.c_int64(current.value + added))
    return {
        "synthetic_connections": count,
        "map_entries_written": 2 * count,
        "fullnat_pairs": len(pairs),
        "fullnat_capacity": capacity(pairs),
        "per_pair": [
            {
                "service": f"{p.vip}:{p.port}/{'udp' if p.proto == UDP else 'tcp'}",
                "endpoint_index": p.ep_index,
                "connections": q,
                "source_port_occupancy": round(q / p.port_count, 3),
            }
            for p, q in zip(pairs, quotas(pairs, count, probe_port, probe_share), strict=True)
        ],
        "write_s": round(time.monotonic() - started, 2),
    }


def keys_of(maps: Maps, count: int, probe_port: int, probe_share: float) -> list[CtKey]:
    """The forward keys `fill` writes (for the same maps), in the order it writes them."""
    pairs = fullnat_pairs(maps)
    return [key for key, _ in build(pairs, count, 0, probe_port, probe_share)]
