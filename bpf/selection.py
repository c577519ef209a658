"""Selection tables, computed in Python and read by the program (pure functions).

The program picks ``table.entries[n % table.size]`` where ``n`` depends on the algorithm: a
shared counter (round robin, weighted), a hash of the flow (hash, Maglev), or, for source
persistence, the counter on a client's first connection. So one table per service says it all:

* round robin, hash, persist, least-connections: each active endpoint once;
* weighted: a smooth weighted round-robin sequence (each endpoint ``weight`` times per cycle,
  spread out rather than in runs);
* Maglev (Eisenbud et al., NSDI 2016): the lookup table of prime size ``M`` >= 100 x endpoints,
  filled by each endpoint's permutation (offset and skip from two independent hashes of its
  address and port). Removing one of N endpoints moves about 1/N of the flows, and every node
  computes the same table from the same endpoints.

Endpoints are identified by their stable index in the service's endpoint set; ``key`` names
them for hashing ("address:port") so the table does not depend on the index order.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import attrs

from .layout import MAX_ENDPOINTS, MAX_TABLE, Selection

__all__ = ["Candidate", "build_table", "maglev_size", "maglev_table", "smooth_weighted"]

#: Maglev table size per endpoint (the paper's guidance: M >> N for an even spread).
MAGLEV_FACTOR = 100


@attrs.frozen
class Candidate:
    """An active endpoint: its stable index, hashing key and weight (>= 1)."""

    index: int
    key: str
    weight: int = 1


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


def maglev_size(endpoints: int) -> int:
    """The smallest prime >= 100 x ``endpoints`` (at least 101)."""
    n = max(MAGLEV_FACTOR * max(endpoints, 1), 101)
    while not _is_prime(n):
        n += 1
    return n


def _hash(text: str, salt: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8, salt=salt).digest())


def maglev_table(candidates: Sequence[Candidate], size: int | None = None) -> list[int]:
    """The Maglev lookup table: entry -> endpoint index. Weights give an endpoint that many
    turns per round of filling."""
    if not candidates:
        return []
    m = size or maglev_size(len(candidates))
    if m > MAX_TABLE or not _is_prime(m):
        raise ValueError(f"Maglev table size {m}: must be a prime <= {MAX_TABLE}")
    ordered = sorted(candidates, key=lambda c: c.key)
    offsets = [_hash(c.key, b"offset") % m for c in ordered]
    skips = [_hash(c.key, b"skip") % (m - 1) + 1 for c in ordered]
    nexts = [0] * len(ordered)
    table = [-1] * m
    filled = 0
    while True:
        for i, candidate in enumerate(ordered):
            for _ in range(candidate.weight):
                slot = (offsets[i] + nexts[i] * skips[i]) % m
                while table[slot] >= 0:
                    nexts[i] += 1
                    slot = (offsets[i] + nexts[i] * skips[i]) % m
                table[slot] = candidate.index
                nexts[i] += 1
                filled += 1
                if filled == m:
                    return table


def smooth_weighted(candidates: Sequence[Candidate], limit: int = MAX_TABLE) -> list[int]:
    """One cycle of smooth weighted round robin (weights reduced by their gcd, then scaled
    down to fit ``limit`` if they must)."""
    if not candidates:
        return []
    weights = [c.weight for c in candidates]
    divisor = math.gcd(*weights)
    weights = [w // divisor for w in weights]
    total = sum(weights)
    if total > limit:
        weights = [max(1, w * limit // total) for w in weights]
        total = sum(weights)
    current = [0] * len(candidates)
    out = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(candidates)), key=lambda i: (current[i], -i))
        current[best] -= total
        out.append(candidates[best].index)
    return out


def build_table(selection: Selection, candidates: Sequence[Candidate]) -> list[int]:
    """The table the program uses for ``selection`` over the active ``candidates``."""
    if len(candidates) > MAX_ENDPOINTS:
        raise ValueError(f"{len(candidates)} endpoints; at most {MAX_ENDPOINTS}")
    if selection is Selection.MAGLEV:
        return maglev_table(candidates)
    if selection is Selection.WEIGHTED:
        return smooth_weighted(candidates)
    return [c.index for c in sorted(candidates, key=lambda c: c.index)]
