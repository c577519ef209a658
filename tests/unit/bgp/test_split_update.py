"""`split_update`: the speaker applies a large UPDATE in slices that mean the same."""

from __future__ import annotations

import ipaddress

from bgp.codec import MpReachNlri, MpUnreachNlri, Origin, PathAttributes, Update
from bgp.speaker import split_update
from bgp.types import Afi, Safi

ATTRS = PathAttributes(origin=Origin.IGP, next_hop=ipaddress.IPv4Address("192.168.80.254"))


def v4(n: int, base: int = 10) -> list[ipaddress.IPv4Network]:
    return [ipaddress.IPv4Network(((base << 24) + (i << 8), 24)) for i in range(n)]


def v6(n: int) -> list[ipaddress.IPv6Network]:
    return [ipaddress.IPv6Network(((0xFD00 << 112) + (i << 64), 64)) for i in range(n)]


def test_small_update_is_passed_whole() -> None:
    update = Update(attributes=ATTRS, nlri=v4(5))
    assert list(split_update(update, 200)) == [update]


def test_large_update_slices_cover_everything_once_with_the_same_attributes() -> None:
    reach = MpReachNlri(Afi.IPV6, Safi.UNICAST, ipaddress.IPv6Address("fd00:80::254"), v6(450))
    unreach = MpUnreachNlri(Afi.IPV6, Safi.UNICAST, v6(30))
    update = Update(
        withdrawn=v4(250, base=11),
        attributes=ATTRS,
        nlri=v4(610),
        mp_reach=reach,
        mp_unreach=unreach,
    )
    parts = list(split_update(update, 200))
    assert all(len(p.announced_all()) + len(p.withdrawn_all()) <= 200 for p in parts)
    announced = [p for part in parts for p in part.announced_all()]
    withdrawn = [p for part in parts for p in part.withdrawn_all()]
    assert sorted(map(str, announced)) == sorted(map(str, update.announced_all()))
    assert sorted(map(str, withdrawn)) == sorted(map(str, update.withdrawn_all()))
    # withdrawals first, then announcements, as in the UPDATE itself
    first_announcing = next(i for i, p in enumerate(parts) if p.announced_all())
    assert all(not p.withdrawn_all() for p in parts[first_announcing:])
    for part in parts:
        if part.announced_all():
            assert part.attributes is update.attributes  # one shared path in the RIB


def test_treat_as_withdraw_update_stays_whole() -> None:
    update = Update(attributes=ATTRS, nlri=v4(500), treat_as_withdraw=True)
    assert list(split_update(update, 200)) == [update]
