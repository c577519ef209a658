"""What this node advertises to each peer (its Adj-RIB-Out) and the UPDATEs that move a peer
from one advertised set to the next, pure.

Only the node's own routes go out — the VIP adverts of the intent (`NodeIntent.adverts`) plus
optional static prefixes; routes learned from peers are never re-advertised. Per route:

* ORIGIN IGP; AS_PATH our AS ``1 + prepend`` times towards eBGP, empty towards iBGP;
* NEXT_HOP self (the session's local address); IPv6 routes travel in MP_REACH_NLRI with the
  local IPv6 address (and optional link-local) as next hop;
* MULTI_EXIT_DISC, COMMUNITIES (``asn << 16 | value``), LARGE_COMMUNITY from the advert;
* LOCAL_PREF only towards iBGP.

`AdjRibOut.diff` sends only what changed, one UPDATE per group of prefixes with identical
attributes, split so that no message exceeds the negotiated maximum (4096 octets, 65535 with
RFC 8654 Extended Message); sizes are computed from the encoded attributes and prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar

import attrs

from appliance.config.values import Community
from appliance.config.values import LargeCommunity as ConfigLargeCommunity
from appliance.intent import RouteAdvert
from bgp.codec.attr_basic import AsPath, Origin
from bgp.codec.attr_community import LargeCommunity
from bgp.codec.attr_mp import MpReachNlri, MpUnreachNlri
from bgp.codec.attributes import PathAttributes, encode_attributes
from bgp.codec.header import HEADER_LENGTH, MessageType, max_message_length
from bgp.codec.update import Update, end_of_rib
from bgp.rib import prefix_family
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Afi, Family, Negotiated, Prefix, Safi

DEFAULT_LOCAL_PREF = 100

# UPDATE body: withdrawn-routes length (2) + total-path-attribute length (2).
_UPDATE_FIXED = HEADER_LENGTH + 4
# An MP attribute header, counted with the 2-octet extended length to stay on the safe side.
_MP_ATTR_HEADER = 4

_P = TypeVar("_P", bound=IPv4Network | IPv6Network)


@attrs.frozen
class ExportSettings:
    """One established session's view: what was negotiated and our end's addresses."""

    negotiated: Negotiated  # local/peer AS, eBGP or iBGP, families, 4-octet AS, extended msg
    next_hop: IPv4Address | None  # NEXT_HOP self for IPv4 routes (None: IPv4 not advertised)
    next_hop6: IPv6Address | None = None  # MP_REACH next hop for IPv6 routes
    link_local_next_hop6: IPv6Address | None = None
    local_pref: int = DEFAULT_LOCAL_PREF  # iBGP only

    @property
    def ebgp(self) -> bool:
        return self.negotiated.ebgp

    @property
    def local_asn(self) -> int:
        return self.negotiated.local_asn

    @property
    def max_message(self) -> int:
        return max_message_length(MessageType.UPDATE, self.negotiated)

    def carries(self, family: Family) -> bool:
        """Whether routes of ``family`` can be advertised on this session."""
        if family not in self.negotiated.families:
            return False
        return (self.next_hop if family == IPV4_UNICAST else self.next_hop6) is not None


def community_value(value: Community) -> int:
    return (value.asn << 16) | value.value


def large_community(value: ConfigLargeCommunity) -> LargeCommunity:
    return LargeCommunity(value.global_admin, value.local1, value.local2)


def route_attributes(
    settings: ExportSettings,
    family: Family,
    med: int | None = None,
    prepend: int = 0,
    communities: Iterable[Community] = (),
    large_communities: Iterable[ConfigLargeCommunity] = (),
) -> PathAttributes:
    """The attributes of one of our routes on this session (the IPv6 next hop is not an
    attribute: `AdjRibOut` puts it in MP_REACH_NLRI)."""
    ebgp = settings.ebgp
    as_path = AsPath.sequence([settings.local_asn] * (1 + prepend)) if ebgp else AsPath()
    return PathAttributes(
        origin=Origin.IGP,
        as_path=as_path,
        next_hop=settings.next_hop if family == IPV4_UNICAST else None,
        med=med,
        local_pref=None if ebgp else settings.local_pref,
        communities=dict.fromkeys(community_value(c) for c in communities),
        large_communities=dict.fromkeys(large_community(c) for c in large_communities),
    )


def export_routes(
    adverts: Iterable[RouteAdvert],
    settings: ExportSettings,
    static: Iterable[Prefix] = (),
) -> dict[Prefix, PathAttributes]:
    """The Adj-RIB-Out content for one session: every advert (and static prefix; an advert
    for the same prefix wins) whose family the session carries. Equal attributes are one
    shared object."""
    shared: dict[tuple[object, ...], PathAttributes] = {}

    def attributes_for(
        family: Family,
        med: int | None,
        prepend: int,
        communities: tuple[Community, ...],
        large: tuple[ConfigLargeCommunity, ...],
    ) -> PathAttributes:
        key = (family, med, prepend, communities, large)
        found = shared.get(key)
        if found is None:
            found = route_attributes(settings, family, med, prepend, communities, large)
            shared[key] = found
        return found

    out: dict[Prefix, PathAttributes] = {}
    for prefix in static:
        family = prefix_family(prefix)
        if settings.carries(family):
            out[prefix] = attributes_for(family, None, 0, (), ())
    for advert in adverts:
        family = prefix_family(advert.prefix)
        if settings.carries(family):
            out[advert.prefix] = attributes_for(
                family, advert.med, advert.prepend, advert.communities, advert.large_communities
            )
    return out


def _prefix_size(prefix: Prefix) -> int:
    return 1 + (prefix.prefixlen + 7) // 8


def _chunks(prefixes: Sequence[_P], room: int) -> list[list[_P]]:
    """``prefixes`` cut into runs whose encoded size fits ``room`` octets."""
    if room < 5:  # not even one IPv4 /32 fits
        raise ValueError("path attributes leave no room for NLRI in an UPDATE")
    out: list[list[_P]] = []
    run: list[_P] = []
    used = 0
    for prefix in prefixes:
        size = _prefix_size(prefix)
        if size > room:
            raise ValueError(f"no room for {prefix} in an UPDATE")
        if used + size > room:
            out.append(run)
            run, used = [], 0
        run.append(prefix)
        used += size
    if run:
        out.append(run)
    return out


def _sort_key(prefix: Prefix) -> tuple[int, int, int]:
    return (prefix.version, int(prefix.network_address), prefix.prefixlen)


class AdjRibOut:
    """What one peer has been sent; turns a new desired set into UPDATEs."""

    def __init__(self, settings: ExportSettings) -> None:
        self.settings = settings
        self._routes: dict[Prefix, PathAttributes] = {}

    @property
    def routes(self) -> Mapping[Prefix, PathAttributes]:
        return self._routes

    def __len__(self) -> int:
        return len(self._routes)

    def diff(self, new: Mapping[Prefix, PathAttributes]) -> list[Update]:
        """UPDATEs taking the peer from the current set to ``new`` (withdrawals first), and
        ``new`` becomes the current set. Unchanged routes produce nothing."""
        old = self._routes
        withdrawn = [prefix for prefix in old if prefix not in new]
        announced: dict[Prefix, PathAttributes] = {}
        for prefix, attributes in new.items():
            held = old.get(prefix)
            if held is None or (held is not attributes and held != attributes):
                announced[prefix] = attributes
        self._routes = dict(new)
        return self._updates(withdrawn, announced)

    def full(self) -> list[Update]:
        """Every route (new session or ROUTE-REFRESH), then End-of-RIB for each family the
        session negotiated."""
        updates = self._updates([], self._routes)
        families = sorted(self.settings.negotiated.families & {IPV4_UNICAST, IPV6_UNICAST})
        updates.extend(end_of_rib(family) for family in families)
        return updates

    def clear(self) -> None:
        """The session went down: nothing has been sent on the next one."""
        self._routes = {}

    # --- packing -----------------------------------------------------------------------------

    def _updates(
        self, withdrawn: list[Prefix], announced: Mapping[Prefix, PathAttributes]
    ) -> list[Update]:
        limit = self.settings.max_message
        out: list[Update] = []
        v4 = sorted((p for p in withdrawn if p.version == 4), key=_sort_key)
        v6 = sorted((p for p in withdrawn if p.version == 6), key=_sort_key)
        out.extend(Update(withdrawn=run) for run in _chunks(v4, limit - _UPDATE_FIXED))
        room6 = limit - _UPDATE_FIXED - _MP_ATTR_HEADER - 3  # AFI, SAFI
        out.extend(
            Update(mp_unreach=MpUnreachNlri(Afi.IPV6, Safi.UNICAST, run))
            for run in _chunks(v6, room6)
        )
        groups: dict[tuple[int, PathAttributes], list[Prefix]] = {}
        for prefix, attributes in announced.items():
            groups.setdefault((prefix.version, attributes), []).append(prefix)
        ordered = sorted(groups.items(), key=lambda item: _sort_key(min(item[1], key=_sort_key)))
        for (version, attributes), prefixes in ordered:
            out.extend(self._announce(version, attributes, sorted(prefixes, key=_sort_key)))
        return out

    def _announce(
        self, version: int, attributes: PathAttributes, prefixes: list[Prefix]
    ) -> list[Update]:
        settings = self.settings
        block = len(encode_attributes(attributes, settings.negotiated))
        room = settings.max_message - _UPDATE_FIXED - block
        if version == 4:
            return [
                Update(attributes=attributes, nlri=_ipv4(run)) for run in _chunks(prefixes, room)
            ]
        next_hop = settings.next_hop6
        if next_hop is None:
            raise ValueError("IPv6 routes need ExportSettings.next_hop6")
        link_local = settings.link_local_next_hop6
        hop_len = 16 if link_local is None else 32
        room -= _MP_ATTR_HEADER + 2 + 1 + 1 + hop_len + 1  # AFI, SAFI, NH length, NH, reserved
        return [
            Update(
                attributes=attributes,
                mp_reach=MpReachNlri(Afi.IPV6, Safi.UNICAST, next_hop, run, link_local),
            )
            for run in _chunks(prefixes, room)
        ]


def _ipv4(prefixes: list[Prefix]) -> list[IPv4Network]:
    return [prefix for prefix in prefixes if isinstance(prefix, IPv4Network)]
