"""The configuration as frozen attrs classes.

Defaults here equal the schema defaults, so a ``Config`` built in code means what the same keys
left out of a file mean. Addresses are ``ipaddress`` objects, files absolute ``Path``s (the config
layer only checks that they exist; it never reads secrets), sequences are tuples.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from pathlib import Path

import attrs

from .values import (
    Community,
    IPAddress,
    IPNetwork,
    LargeCommunity,
    PrefixFilter,
    SocketAddress,
)

BGP_PORT = 179
SYNC_PORT = 7946
WEB_PORT = 8080


class Protocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


class NatMode(enum.StrEnum):
    """How a service rewrites packets (the seed's setLBMode 0/1/2, plus direct server return)."""

    DEFAULT = "default"  # DNAT to the endpoint, replies come back through the node
    ONEARM = "onearm"  # DNAT + SNAT to the node's address on the endpoint side
    FULLNAT = "fullnat"  # DNAT + SNAT to ``Service.source`` (floating) or the node's address
    DSR = "dsr"  # direct server return: endpoints answer clients directly


class Selection(enum.StrEnum):
    ROUNDROBIN = "roundrobin"
    WEIGHTED = "weighted"
    HASH = "hash"
    MAGLEV = "maglev"
    PERSIST = "persist"
    LEASTCONN = "leastconn"


class ProbeType(enum.StrEnum):
    NONE = "none"
    ICMP = "icmp"
    TCP = "tcp"
    UDP = "udp"
    HTTP = "http"
    HTTPS = "https"

    @property
    def is_http(self) -> bool:
        return self in (ProbeType.HTTP, ProbeType.HTTPS)

    @property
    def is_udp(self) -> bool:
        return self is ProbeType.UDP

    @property
    def uses_port(self) -> bool:
        return self not in (ProbeType.NONE, ProbeType.ICMP)


class TrackType(enum.StrEnum):
    INTERFACE = "interface"
    BGP_PEER = "bgp_peer"
    SERVICE = "service"
    COMMAND = "command"


@attrs.frozen
class Node:
    name: str
    id: int  # 1-255; partitions full-NAT source ports between nodes
    router_id: ipaddress.IPv4Address | None = None


@attrs.frozen
class Interfaces:
    """Interfaces the dataplane attaches to: any ``include`` match and no ``exclude`` match."""

    include: tuple[str, ...] = (".*",)
    exclude: tuple[str, ...] = ("^lo$",)
    egress_hooks: bool = False

    def selects(self, ifname: str) -> bool:
        return any(re.search(p, ifname) for p in self.include) and not any(
            re.search(p, ifname) for p in self.exclude
        )


@attrs.frozen
class VipPool:
    name: str
    cidr: IPNetwork


@attrs.frozen
class Probe:
    """An endpoint health check. ``path``/``expect_*`` apply to http/https only, ``send`` and
    ``expect`` to udp only (``send``: the datagram's text, None: an empty datagram; ``expect``:
    a substring the reply must contain, None: any reply)."""

    type: ProbeType = ProbeType.TCP
    port: int | None = None  # None: the endpoint's port
    path: str = "/"
    expect_status: int = 200
    expect_body: str | None = None
    send: str | None = None
    expect: str | None = None
    interval_ms: int = 2000
    timeout_ms: int = 1000
    rise: int = 2
    fall: int = 3


@attrs.frozen
class Endpoint:
    address: IPAddress
    port: int
    weight: int = 1
    probe: Probe | None = None  # None: the service's probe


@attrs.frozen
class Service:
    """A virtual service. Exactly one of ``vip`` and ``pool`` is set."""

    name: str
    port: int
    endpoints: tuple[Endpoint, ...]
    vip: IPAddress | None = None
    pool: str | None = None
    protocol: Protocol = Protocol.TCP
    mode: NatMode = NatMode.DEFAULT
    selection: Selection = Selection.ROUNDROBIN
    persist_timeout_s: int = 300  # used by selection "persist" only
    source: IPAddress | None = None  # fullnat only: floating source address
    probe: Probe | None = None  # None: endpoints are not probed (always up)
    communities: tuple[Community, ...] = ()  # added to this service's VIP route
    large_communities: tuple[LargeCommunity, ...] = ()

    def probe_for(self, endpoint: Endpoint) -> Probe | None:
        """The probe that applies to ``endpoint``: its own, else the service's."""
        return endpoint.probe if endpoint.probe is not None else self.probe


JOIN_TIMEOUT_MS = 30_000


@attrs.frozen
class Track:
    """Something an HA group watches. ``weight`` None: its failure puts the group in FAULT."""

    type: TrackType
    name: str  # interface name / BGP peer address / service name / command line
    weight: int | None = None  # -253..253 added to the priority while the tracked thing is down
    interval_ms: int = 1000  # command only


@attrs.frozen
class HaGroup:
    id: int
    interface: str
    vips: tuple[IPAddress, ...]
    priority: int = 100
    #: addresses allocated from these pools (to services with ``pool:``) are VIPs of the group too
    pools: tuple[str, ...] = ()
    preempt: bool = True
    preempt_delay_ms: int = 0
    advert_interval_ms: int = 100
    unicast_peers: tuple[IPAddress, ...] = ()
    auth_key_file: Path | None = None
    track: tuple[Track, ...] = ()
    notify: str | None = None  # command run with (group id, old role, new role) on each change


@attrs.frozen
class SyncGroup:
    """HA groups that always change state together."""

    name: str
    groups: tuple[int, ...]


@attrs.frozen
class Ha:
    groups: tuple[HaGroup, ...]
    sync_groups: tuple[SyncGroup, ...] = ()
    #: with conntrack sync configured, how long a (re)starting node waits for its bulk resync
    #: before it may preempt anyway
    join_timeout_ms: int = JOIN_TIMEOUT_MS


@attrs.frozen
class BgpPeer:
    address: IPAddress
    asn: int
    port: int = BGP_PORT
    password_file: Path | None = None
    hold_time: int = 90
    passive: bool = False
    ttl_security: bool = False  # GTSM (RFC 5082): send TTL 255, accept only TTL 255
    multihop_ttl: int | None = None  # eBGP multihop: outgoing TTL (None: system default)
    max_prefixes: int | None = None  # accepted-prefix limit; exceeded: Cease/1 (RFC 4486)
    description: str | None = None


@attrs.frozen
class AdvertAttrs:
    """Path attributes put on advertised VIP routes."""

    med: int = 0
    prepend: int = 0
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()


ACTIVE_ADVERT = AdvertAttrs(med=10)
BACKUP_ADVERT = AdvertAttrs(med=20, prepend=3)


@attrs.frozen
class Advertise:
    """Attributes by HA role; without an ``ha`` section every node uses ``active``."""

    active: AdvertAttrs = ACTIVE_ADVERT
    backup: AdvertAttrs = BACKUP_ADVERT


@attrs.frozen
class GracefulRestart:
    """RFC 4724. With it, a daemon restart keeps our routes at the peers (no withdraw) for up
    to ``restart_time`` seconds, and we keep a restarting peer's routes as stale as long."""

    enabled: bool = True
    restart_time: int = 30  # 1-4095 s; short, so a node that never returns is dropped soon


@attrs.frozen
class Bgp:
    asn: int
    router_id: ipaddress.IPv4Address  # filled from node.router_id when not given
    listen_port: int = BGP_PORT  # 0: do not listen
    install_routes: bool = False
    peers: tuple[BgpPeer, ...] = ()
    advertise: Advertise = Advertise()
    imports: tuple[PrefixFilter, ...] = ()  # YAML key "import"; empty: accept nothing (RFC 8212)
    graceful_restart: GracefulRestart = GracefulRestart()


@attrs.frozen
class Sync:
    listen: SocketAddress
    key_file: Path
    peers: tuple[SocketAddress, ...] = ()


WEB_LISTEN = SocketAddress(ipaddress.IPv4Address("127.0.0.1"), WEB_PORT)


@attrs.frozen
class Web:
    listen: SocketAddress = WEB_LISTEN
    token_file: Path | None = None


@attrs.frozen
class Config:
    node: Node
    interfaces: Interfaces = Interfaces()
    vip_pools: tuple[VipPool, ...] = ()
    services: tuple[Service, ...] = ()
    ha: Ha | None = None  # None: active-active (no election)
    bgp: Bgp | None = None
    sync: Sync | None = None
    web: Web = Web()
