"""The BGP decision process (RFC 4271 §9.1.2.2) with the usual tie-breaks, and multipath.

Rules, in order; the first that tells two paths apart decides (``Reason`` names each):

1. highest LOCAL_PREF (absent: ``default_local_pref``, 100; eBGP-learned routes carry none)
2. shortest AS_PATH (an AS_SET counts 1, confederation segments 0)
3. lowest ORIGIN (IGP < EGP < INCOMPLETE)
4. lowest MULTI_EXIT_DISC (absent: 0), only between paths from the same neighbouring AS unless
   ``always_compare_med``
5. eBGP-learned over iBGP-learned
6. lowest IGP metric to the next hop
7. the oldest of two eBGP paths (RFC 5004), only with ``prefer_oldest``
8. lowest router id (the ORIGINATOR_ID when present, RFC 4456)
9. shortest CLUSTER_LIST
10. lowest peer address

Selecting among many paths uses "deterministic MED": the best of each neighbouring-AS group
(rule 4 applies inside a group) is found first, then the group winners are compared without
rule 4. Rule 4 is not transitive across groups, so comparing paths pairwise in arrival order
could pick a different best for the same set; grouping makes the result depend on the set alone.

Paths equal to the best through rule 6 (so with equal MED too), from the same neighbouring AS
unless ``multipath_relax``, form the multipath (ECMP) set.

Everything here is pure; ``Path`` comes from `bgp.rib`. Candidates are passed in arrival order
(oldest first) — that order is only consulted by rule 7.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import attrs

from bgp.codec.attr_basic import Origin

if TYPE_CHECKING:
    from bgp.rib import Path

DEFAULT_LOCAL_PREF = 100


class Reason(enum.StrEnum):
    """The rule that decided a comparison (text for ``show bgp routes``)."""

    LOCAL_PREF = "higher local-pref"
    AS_PATH = "shorter AS path"
    ORIGIN = "lower origin"
    MED = "lower MED"
    EBGP = "eBGP over iBGP"
    IGP_METRIC = "lower IGP metric"
    OLDEST = "older eBGP path"
    ROUTER_ID = "lower router id"
    CLUSTER_LIST = "shorter cluster list"
    PEER_ADDRESS = "lower peer address"
    EQUAL = "equal"


@attrs.frozen
class DecisionOptions:
    always_compare_med: bool = False
    prefer_oldest: bool = False  # RFC 5004
    multipath: bool = True
    multipath_relax: bool = False  # ECMP across different neighbouring ASes
    default_local_pref: int = DEFAULT_LOCAL_PREF


DEFAULT_OPTIONS = DecisionOptions()


class Comparison(NamedTuple):
    winner: Path
    reason: Reason


class Selection(NamedTuple):
    best: Path | None
    multipath: tuple[Path, ...]  # best first; () when there is no best


NO_SELECTION = Selection(None, ())


def neighbour_as(path: Path) -> int:
    """The AS the route was learned from: leftmost AS of the AS_PATH, else the peer's AS
    (an empty AS_PATH from an iBGP peer means our own AS)."""
    as_path = path.attributes.as_path
    first = as_path.first_asn() if as_path is not None else None
    return path.peer.asn if first is None else first


def local_pref(path: Path, options: DecisionOptions = DEFAULT_OPTIONS) -> int:
    value = path.attributes.local_pref
    return options.default_local_pref if value is None else value


def as_path_length(path: Path) -> int:
    as_path = path.attributes.as_path
    return 0 if as_path is None else as_path.length()


def _origin(path: Path) -> int:
    origin = path.attributes.origin
    return Origin.INCOMPLETE if origin is None else int(origin)


def _med(path: Path) -> int:
    med = path.attributes.med
    return 0 if med is None else med


def router_id(path: Path) -> int:
    originator = path.attributes.originator_id
    return int(originator if originator is not None else path.peer.router_id)


def peer_rank(path: Path) -> int:
    """The peer address as one int, IPv4 before IPv6 (rule 10: lower wins)."""
    address = path.peer.address
    return (address.version << 128) | int(address)


_Key = tuple[int, int, int, int, int, int, int, int, int, int]


def _key(path: Path, age: int, options: DecisionOptions, with_med: bool = True) -> _Key:
    """Rules 1-10 as one tuple, bigger is better; ``with_med`` False leaves rule 4 out."""
    return (
        local_pref(path, options),
        -as_path_length(path),
        -_origin(path),
        -_med(path) if with_med else 0,
        int(path.peer.ebgp),
        -path.peer.igp_metric,
        -age if options.prefer_oldest and path.peer.ebgp else 0,
        -router_id(path),
        -len(path.attributes.cluster_list),
        -peer_rank(path),
    )


_ECMP_RULES = 6  # rules 1-6 must be equal for paths to share the multipath set
_REASONS = (
    Reason.LOCAL_PREF,
    Reason.AS_PATH,
    Reason.ORIGIN,
    Reason.MED,
    Reason.EBGP,
    Reason.IGP_METRIC,
    Reason.OLDEST,
    Reason.ROUTER_ID,
    Reason.CLUSTER_LIST,
    Reason.PEER_ADDRESS,
)


def compare(
    a: Path,
    b: Path,
    options: DecisionOptions = DEFAULT_OPTIONS,
    older: Path | None = None,
) -> Comparison:
    """The better of ``a`` and ``b`` and the rule that decided. ``older`` (``a``, ``b`` or
    None) tells which arrived first; it matters only with ``options.prefer_oldest``."""
    with_med = options.always_compare_med or neighbour_as(a) == neighbour_as(b)
    a_age = 0 if older is a else 1
    b_age = 0 if older is b else 1
    if older is None:
        a_age = b_age = 0
    left = _key(a, a_age, options, with_med)
    right = _key(b, b_age, options, with_med)
    for reason, x, y in zip(_REASONS, left, right, strict=True):
        if x != y:
            return Comparison(a if x > y else b, reason)
    return Comparison(a, Reason.EQUAL)


def _group_winners(
    candidates: Sequence[Path], options: DecisionOptions
) -> dict[int, tuple[_Key, Path]]:
    """Neighbouring AS -> (key, best path) of that group (one group with always_compare_med)."""
    groups: dict[int, tuple[_Key, Path]] = {}
    for age, path in enumerate(candidates):
        asn = 0 if options.always_compare_med else neighbour_as(path)
        key = _key(path, age, options)
        held = groups.get(asn)
        if held is None or key > held[0]:
            groups[asn] = (key, path)
    return groups


def best_path(candidates: Sequence[Path], options: DecisionOptions = DEFAULT_OPTIONS) -> Path:
    """The best of a non-empty sequence of paths given in arrival order (deterministic MED)."""
    if len(candidates) == 1:
        return candidates[0]
    winners = _group_winners(candidates, options)
    if len(winners) == 1:
        return next(iter(winners.values()))[1]
    # Across groups rule 4 does not apply: zero it in the group winners' keys.
    return max(
        ((_without_med(key), path) for key, path in winners.values()),
        key=lambda item: item[0],
    )[1]


def _without_med(key: _Key) -> _Key:
    return (key[0], key[1], key[2], 0, key[4], key[5], key[6], key[7], key[8], key[9])


def select(candidates: Sequence[Path], options: DecisionOptions = DEFAULT_OPTIONS) -> Selection:
    """Best path and multipath set (best first, then by rules 8-10) of the candidates, given
    in arrival order (oldest first)."""
    if not candidates:
        return NO_SELECTION
    best = best_path(candidates, options)
    if len(candidates) == 1 or not options.multipath:
        return Selection(best, (best,))
    want = _key(best, 0, options)[:_ECMP_RULES]
    asn = neighbour_as(best)
    others = [
        (_key(path, 0, options), path)
        for path in candidates
        if path is not best
        and _key(path, 0, options)[:_ECMP_RULES] == want
        and (options.multipath_relax or neighbour_as(path) == asn)
    ]
    others.sort(key=lambda item: item[0], reverse=True)
    return Selection(best, (best, *(path for _key_, path in others)))


def explain(
    candidates: Sequence[Path], options: DecisionOptions = DEFAULT_OPTIONS
) -> list[tuple[Path, Reason | None]]:
    """Each candidate (arrival order) with the rule by which it lost (None for the best).

    With deterministic MED a path may beat the best in a pairwise comparison yet lose inside
    its own neighbouring-AS group; it is then explained by the loss to its group's winner.
    """
    if not candidates:
        return []
    best = best_path(candidates, options)
    winners = _group_winners(candidates, options)
    age = {id(path): index for index, path in enumerate(candidates)}
    out: list[tuple[Path, Reason | None]] = []
    for path in candidates:
        if path is best:
            out.append((path, None))
            continue
        rival = best
        if compare(best, path, options, _older(best, path, age)).winner is not best:
            asn = 0 if options.always_compare_med else neighbour_as(path)
            rival = winners[asn][1]
        out.append((path, compare(rival, path, options, _older(rival, path, age)).reason))
    return out


def _older(a: Path, b: Path, age: dict[int, int]) -> Path:
    return a if age[id(a)] < age[id(b)] else b
