"""Import policy between each peer's Adj-RIB-In and the Loc-RIB, pure.

* RFC 8212 default deny: a route from an eBGP peer is accepted only when one of the configured
  ``bgp.import`` prefix filters matches it (no filters: nothing from eBGP); iBGP routes pass.
* Loop detection: our own AS anywhere in the AS_PATH, or our router id as ORIGINATOR_ID
  (RFC 4456 §8), rejects the route — from any peer.
* Maximum prefixes per peer: `PeerImport` counts the prefixes it currently accepts; going above
  the limit is reported (``limit_exceeded``) and `PeerImport.cease` gives the error the session
  sends (Cease / Maximum Number of Prefixes Reached, RFC 4486).

The Adj-RIB-In keeps rejected routes too, so a policy change is applied with
`PeerImport.reevaluate` over it (no route refresh needed).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from ipaddress import IPv4Address

import attrs

from appliance.config.model import Bgp
from appliance.config.values import PrefixFilter
from bgp.errors import BgpError, CeaseSubcode, ErrorCode
from bgp.rib import Path, PeerInfo, Route, RouteChange
from bgp.types import IPV4_UNICAST, Family, Prefix


class Verdict(enum.StrEnum):
    ACCEPT = "accept"
    NO_FILTER_MATCH = "no import filter matches (RFC 8212 default deny)"
    AS_PATH_LOOP = "own AS in AS_PATH"
    ORIGINATOR_LOOP = "own router id as ORIGINATOR_ID"


# (IP version, network as int, netmask as int, ge, le): `PrefixFilter.matches` on plain ints.
_Compiled = tuple[int, int, int, int, int]


def _compile(filters: tuple[PrefixFilter, ...]) -> tuple[_Compiled, ...]:
    return tuple(
        (f.prefix.version, int(f.prefix.network_address), int(f.prefix.netmask), f.ge, f.le)
        for f in filters
    )


@attrs.frozen
class ImportPolicy:
    local_asn: int
    filters: tuple[PrefixFilter, ...] = ()
    router_id: IPv4Address | None = None
    _compiled: tuple[_Compiled, ...] = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: _compile(self.filters), takes_self=True),
    )

    @classmethod
    def from_config(cls, bgp: Bgp) -> ImportPolicy:
        return cls(bgp.asn, bgp.imports, bgp.router_id)

    def prefix_allowed(self, prefix: Prefix) -> bool:
        """Whether an eBGP route for ``prefix`` passes the import filters."""
        version, length = prefix.version, prefix.prefixlen
        address = int(prefix.network_address)
        for f_version, network, mask, ge, le in self._compiled:
            if f_version == version and ge <= length <= le and address & mask == network:
                return True
        return False

    def path_verdict(self, path: Path) -> Verdict:
        """The checks that depend on the path alone (loops)."""
        as_path = path.attributes.as_path
        if as_path is not None and self.local_asn in as_path.asns():
            return Verdict.AS_PATH_LOOP
        originator = path.attributes.originator_id
        if originator is not None and originator == self.router_id:
            return Verdict.ORIGINATOR_LOOP
        return Verdict.ACCEPT

    def evaluate(self, prefix: Prefix, path: Path) -> Verdict:
        verdict = self.path_verdict(path)
        if verdict is not Verdict.ACCEPT:
            return verdict
        if path.peer.ebgp and not self.prefix_allowed(prefix):
            return Verdict.NO_FILTER_MATCH
        return Verdict.ACCEPT


@attrs.frozen
class ImportResult:
    """``changes`` go to `LocRib.update` (``old``/``new`` None where not accepted);
    ``limit_exceeded``: the session must close with `PeerImport.cease` instead."""

    changes: list[RouteChange]
    limit_exceeded: bool


class PeerImport:
    """Import policy state of one peer: current accepted/rejected prefix counts, cumulative
    verdict counters, and the maximum-prefix check."""

    def __init__(self, policy: ImportPolicy, peer: PeerInfo, max_prefix: int | None = None):
        self.policy = policy
        self.peer = peer
        self.max_prefix = max_prefix
        self.accepted = 0  # prefixes currently accepted
        self.rejected = 0  # prefixes currently held in the Adj-RIB-In but rejected
        self.verdicts: Counter[Verdict] = Counter()  # every announcement evaluated, cumulative
        self._memo: tuple[Path | None, Verdict] = (None, Verdict.ACCEPT)

    @property
    def limit_exceeded(self) -> bool:
        return self.max_prefix is not None and self.accepted > self.max_prefix

    def _verdict(self, policy: ImportPolicy, prefix: Prefix, path: Path) -> Verdict:
        last, verdict = self._memo  # all prefixes of one UPDATE share one Path
        if path is not last or policy is not self.policy:
            verdict = policy.path_verdict(path)
            if policy is self.policy:
                self._memo = (path, verdict)
        if verdict is Verdict.ACCEPT and path.peer.ebgp and not policy.prefix_allowed(prefix):
            return Verdict.NO_FILTER_MATCH
        return verdict

    def _account(
        self,
        prefix: Prefix,
        old: Path | None,
        old_ok: bool,
        new: Path | None,
        new_ok: bool,
        out: list[RouteChange],
    ) -> None:
        self.accepted += new_ok - old_ok
        self.rejected += (new is not None and not new_ok) - (old is not None and not old_ok)
        if old_ok or new_ok:
            out.append(RouteChange(prefix, old if old_ok else None, new if new_ok else None))

    def filter(self, changes: Iterable[RouteChange]) -> ImportResult:
        """Pass the Adj-RIB-In's changes through the policy."""
        out: list[RouteChange] = []
        policy = self.policy
        for prefix, old, new in changes:
            old_ok = old is not None and self._verdict(policy, prefix, old) is Verdict.ACCEPT
            new_ok = False
            if new is not None:
                verdict = self._verdict(policy, prefix, new)
                self.verdicts[verdict] += 1
                new_ok = verdict is Verdict.ACCEPT
            self._account(prefix, old, old_ok, new, new_ok, out)
        return ImportResult(out, self.limit_exceeded)

    def reevaluate(self, policy: ImportPolicy, routes: Iterable[Route]) -> ImportResult:
        """Switch to ``policy`` and re-judge the peer's Adj-RIB-In ``routes``: routes newly
        accepted come as announcements, newly rejected ones as withdrawals."""
        old_policy = self.policy
        out: list[RouteChange] = []
        for route in routes:
            path = route.path
            was = self._verdict(old_policy, route.prefix, path) is Verdict.ACCEPT
            now = self._verdict(policy, route.prefix, path) is Verdict.ACCEPT
            if was != now:
                self._account(route.prefix, path, was, path, now, out)
        self.policy = policy
        self._memo = (None, Verdict.ACCEPT)
        return ImportResult(out, self.limit_exceeded)

    def reset(self) -> None:
        """The session went down and its routes were dropped."""
        self.accepted = 0
        self.rejected = 0
        self._memo = (None, Verdict.ACCEPT)

    def cease(self, family: Family = IPV4_UNICAST) -> BgpError:
        """The NOTIFICATION for an exceeded limit: Cease / Maximum Number of Prefixes Reached,
        data AFI (2) + SAFI (1) + upper bound (4) (RFC 4486 §4)."""
        limit = self.max_prefix if self.max_prefix is not None else 0
        data = family[0].to_bytes(2, "big") + bytes([family[1]]) + limit.to_bytes(4, "big")
        return BgpError(
            ErrorCode.CEASE,
            CeaseSubcode.MAXIMUM_NUMBER_OF_PREFIXES_REACHED,
            data,
            reason=f"peer {self.peer.address} sent more than {limit} accepted prefixes",
        )
