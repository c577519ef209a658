"""Structure of the ``ha`` section: election groups, what they track, sync groups."""

from __future__ import annotations

import attrs

from .model import JOIN_TIMEOUT_MS, HaGroup, SyncGroup, Track, TrackType
from .reader import Converter, Field, Invalid
from .scalars import (
    boolean,
    choice,
    existing_file,
    ifname,
    integer,
    ip_address,
    items_of,
    list_of,
    name,
    text,
)

HA_KEYS = ("groups", "sync_groups", "join_timeout_ms")
GROUP_KEYS = (
    "id",
    "interface",
    "priority",
    "preempt",
    "preempt_delay_ms",
    "advert_interval_ms",
    "vips",
    "pools",
    "unicast_peers",
    "auth_key_file",
    "track",
    "notify",
)
TRACK_KEYS = ("type", "name", "weight", "interval_ms")
SYNC_GROUP_KEYS = ("name", "groups")

GROUP_ID = integer(1, 255)


@attrs.frozen
class HaDraft:
    """The ``ha`` section with each group kept in place (None where it had errors)."""

    groups: tuple[HaGroup | None, ...]
    sync_groups: tuple[SyncGroup | None, ...]
    join_timeout_ms: int = JOIN_TIMEOUT_MS


def ha(field: Field) -> HaDraft:
    m = field.mapping(HA_KEYS)
    groups = m.required("groups", items_of(ha_group))
    if groups.ok and not groups.get():
        m.error("groups", "must have at least 1 item")
    sync_groups = m.optional("sync_groups", items_of(sync_group), ())
    join_timeout = m.optional("join_timeout_ms", integer(0, 600_000), JOIN_TIMEOUT_MS)
    m.finish()
    return HaDraft(groups.get(), sync_groups.get(), join_timeout.get())


def _peer_name(field: Field) -> str:
    """A BGP peer named by its address, in canonical form."""
    return str(ip_address(field))


def _command(field: Field) -> str:
    value = text(field)
    if not value.strip():
        raise Invalid("must not be blank")
    return value


_TRACK_NAME: dict[TrackType, Converter[str]] = {
    TrackType.INTERFACE: ifname,
    TrackType.BGP_PEER: _peer_name,
    TrackType.SERVICE: name,
    TrackType.COMMAND: _command,
}


def track(field: Field) -> Track:
    m = field.mapping(TRACK_KEYS)
    kind = m.required("type", choice(TrackType))
    kind_value = kind.value if isinstance(kind.value, TrackType) else None
    track_name = m.required("name", _TRACK_NAME[kind_value] if kind_value else text)
    weight = m.optional("weight", integer(-253, 253), None)
    interval = m.only_if(
        kind_value in (TrackType.COMMAND, None),
        "interval_ms",
        integer(100),
        1000,
        "for tracks of type command",
    )
    m.finish()
    return Track(kind.get(), track_name.get(), weight.get(), interval.get())


def ha_group(field: Field) -> HaGroup:
    defaults = HaGroup(id=1, interface="", vips=())
    m = field.mapping(GROUP_KEYS)
    group_id = m.required("id", GROUP_ID)
    interface = m.required("interface", ifname)
    priority = m.optional("priority", integer(1, 254), defaults.priority)
    preempt = m.optional("preempt", boolean, defaults.preempt)
    delay = m.optional("preempt_delay_ms", integer(0), defaults.preempt_delay_ms)
    advert = m.optional(
        "advert_interval_ms", integer(10, 40950, multiple_of=10), defaults.advert_interval_ms
    )
    vips = m.required("vips", list_of(ip_address, min_items=1))
    pools = m.optional("pools", list_of(name), ())
    peers = m.optional("unicast_peers", list_of(ip_address), ())
    auth = m.optional("auth_key_file", existing_file, None)
    tracks = m.optional("track", list_of(track), ())
    notify = m.optional("notify", _command, None)
    m.finish()
    return HaGroup(
        id=group_id.get(),
        interface=interface.get(),
        vips=vips.get(),
        priority=priority.get(),
        pools=pools.get(),
        preempt=preempt.get(),
        preempt_delay_ms=delay.get(),
        advert_interval_ms=advert.get(),
        unicast_peers=peers.get(),
        auth_key_file=auth.get(),
        track=tracks.get(),
        notify=notify.get(),
    )


def sync_group(field: Field) -> SyncGroup:
    m = field.mapping(SYNC_GROUP_KEYS)
    group_name = m.required("name", name)
    groups = m.required("groups", list_of(GROUP_ID, min_items=1))
    m.finish()
    return SyncGroup(group_name.get(), groups.get())
