"""VIP pools (the seed's ``externalCIDR``): an address for every service that names a pool.

`allocate` is pure. The same config gives the same allocation on every node:

* an address a service already has (``previous``, persisted by the caller) is kept while the
  service exists, names the same pool and the address is still in it and not taken by an
  explicit ``vip:``, so an allocation never changes under a running service;
* a new service starts at a slot chosen by a hash of its name (not by the order services were
  added) and takes the first free address from there, in name order among new services;
* explicit ``vip:`` addresses inside a pool are never handed out (services may share an
  explicit VIP on different ports; pool services get an address of their own);
* a pool with no free address left is a conflict: reported, the service gets none (and so is
  neither programmed nor advertised) until an address frees up.

Usable addresses: the pool's hosts (an IPv4 network of /30 or larger loses its network and
broadcast addresses; an IPv6 one its subnet-router anycast address).

`load_allocation` / `save_allocation` keep it in a JSON file across restarts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import attrs

from .config.model import Service, VipPool
from .config.values import IPAddress, IPNetwork

__all__ = [
    "Allocation",
    "allocate",
    "load_allocation",
    "save_allocation",
    "usable",
]

#: Addresses probed from a service's hashed slot before a pool counts as full (bounds the
#: search in huge IPv6 pools; IPv4 pools are searched whole).
MAX_PROBES = 65_536


@attrs.frozen
class Allocation:
    addresses: Mapping[str, IPAddress]  # service name -> its pool address
    conflicts: tuple[str, ...] = ()


def _first_last(network: IPNetwork) -> tuple[int, int]:
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.prefixlen <= 30:
        return first + 1, last - 1
    if network.version == 6 and network.prefixlen <= 126:
        return first + 1, last
    return first, last


def usable(network: IPNetwork, address: IPAddress) -> bool:
    first, last = _first_last(network)
    return address.version == network.version and first <= int(address) <= last


def _slot(name: str, count: int) -> int:
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def _candidates(network: IPNetwork, name: str) -> Iterator[IPAddress]:
    first, last = _first_last(network)
    count = last - first + 1
    start = _slot(name, count)
    for step in range(min(count, MAX_PROBES)):
        yield ipaddress.ip_address(first + (start + step) % count)


def allocate(
    pools: Sequence[VipPool],
    services: Sequence[Service],
    previous: Mapping[str, IPAddress] | None = None,
) -> Allocation:
    """Addresses for the services with ``pool:``; see the module docstring for the rules."""
    previous = previous or {}
    by_name = {pool.name: pool for pool in pools}
    explicit = {s.vip for s in services if s.vip is not None}
    taken: set[IPAddress] = set(explicit)
    addresses: dict[str, IPAddress] = {}
    conflicts: list[str] = []
    wanting = sorted((s for s in services if s.pool is not None), key=lambda s: s.name)
    new: list[tuple[Service, VipPool]] = []
    for service in wanting:
        pool = by_name.get(str(service.pool))
        if pool is None:
            conflicts.append(f"service {service.name}: no pool {service.pool}")
            continue
        kept = previous.get(service.name)
        if kept is not None and usable(pool.cidr, kept) and kept not in taken:
            addresses[service.name] = kept
            taken.add(kept)
        else:
            new.append((service, pool))
    for service, pool in new:
        found = next((a for a in _candidates(pool.cidr, service.name) if a not in taken), None)
        if found is None:
            conflicts.append(f"service {service.name}: pool {pool.name} ({pool.cidr}) is full")
            continue
        addresses[service.name] = found
        taken.add(found)
    return Allocation(addresses, tuple(conflicts))


def load_allocation(path: Path) -> dict[str, IPAddress]:
    """The saved allocation; empty when there is none or it is unreadable (then recomputed)."""
    try:
        raw = json.loads(path.read_text())
        return {str(name): ipaddress.ip_address(str(a)) for name, a in raw["addresses"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_allocation(path: Path, allocation: Allocation) -> None:
    """Write atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"addresses": {name: str(a) for name, a in sorted(allocation.addresses.items())}},
        indent=2,
    )
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text + "\n")
    os.replace(temporary, path)
