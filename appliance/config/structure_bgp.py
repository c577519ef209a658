"""Structure of the ``bgp`` section: speaker, peers, advertised attributes, import filter."""

from __future__ import annotations

import ipaddress

from .model import (
    ACTIVE_ADVERT,
    BACKUP_ADVERT,
    AdvertAttrs,
    Advertise,
    Bgp,
    BgpPeer,
    GracefulRestart,
)
from .reader import MISSING, Converter, Dropped, Field, Invalid, Missing
from .scalars import (
    boolean,
    community,
    existing_file,
    integer,
    ip_address,
    ipv4_address,
    large_community,
    list_of,
    network,
    text,
)
from .values import U32_MAX, PrefixFilter
from .yaml_source import YMap

BGP_KEYS = (
    "asn",
    "router_id",
    "listen_port",
    "install_routes",
    "peers",
    "advertise",
    "import",
    "graceful_restart",
)
GR_KEYS = ("enabled", "restart_time")
PEER_KEYS = (
    "address",
    "asn",
    "port",
    "password_file",
    "hold_time",
    "passive",
    "ttl_security",
    "multihop_ttl",
    "max_prefixes",
    "description",
)
ADVERTISE_KEYS = ("active", "backup")
ATTRS_KEYS = ("med", "prepend", "communities", "large_communities")
PREFIX_KEYS = ("prefix", "ge", "le")

ASN = integer(1, U32_MAX)
_HOLD_TIME = integer(0, 65535)

# node.router_id as far as it is known: MISSING when the node section had errors
NodeRouterId = ipaddress.IPv4Address | None | Missing


def hold_time(field: Field) -> int:
    value = _HOLD_TIME(field)
    if value in (1, 2):
        raise Invalid("must be 0 or 3-65535")
    return value


def peer(field: Field) -> BgpPeer:
    defaults = BgpPeer(address=ipaddress.IPv4Address(0), asn=1)
    m = field.mapping(PEER_KEYS)
    address = m.required("address", ip_address)
    asn = m.required("asn", ASN)
    port = m.optional("port", integer(1, 65535), defaults.port)
    password = m.optional("password_file", existing_file, None)
    hold = m.optional("hold_time", hold_time, defaults.hold_time)
    passive = m.optional("passive", boolean, defaults.passive)
    ttl_security = m.optional("ttl_security", boolean, defaults.ttl_security)
    multihop = m.optional("multihop_ttl", integer(1, 255), None)
    max_prefixes = m.optional("max_prefixes", integer(1, U32_MAX), None)
    description = m.optional("description", text, None)
    if ttl_security.value is True and multihop.value not in (None, MISSING):
        m.error("multihop_ttl", "ttl_security (GTSM) sends TTL 255; leave multihop_ttl out")
    m.finish()
    return BgpPeer(
        address=address.get(),
        asn=asn.get(),
        port=port.get(),
        password_file=password.get(),
        hold_time=hold.get(),
        passive=passive.get(),
        ttl_security=ttl_security.get(),
        multihop_ttl=multihop.get(),
        max_prefixes=max_prefixes.get(),
        description=description.get(),
    )


def advert_attrs(defaults: AdvertAttrs) -> Converter[AdvertAttrs]:
    def conv(field: Field) -> AdvertAttrs:
        m = field.mapping(ATTRS_KEYS)
        med = m.optional("med", integer(0, U32_MAX), defaults.med)
        prepend = m.optional("prepend", integer(0, 10), defaults.prepend)
        communities = m.optional("communities", list_of(community), defaults.communities)
        large = m.optional(
            "large_communities", list_of(large_community), defaults.large_communities
        )
        m.finish()
        return AdvertAttrs(med.get(), prepend.get(), communities.get(), large.get())

    return conv


def advertise(field: Field) -> Advertise:
    m = field.mapping(ADVERTISE_KEYS)
    active = m.optional("active", advert_attrs(ACTIVE_ADVERT), ACTIVE_ADVERT)
    backup = m.optional("backup", advert_attrs(BACKUP_ADVERT), BACKUP_ADVERT)
    m.finish()
    return Advertise(active.get(), backup.get())


def prefix_filter(field: Field) -> PrefixFilter:
    """``198.51.100.0/24`` (exactly that route) or ``{prefix, ge, le}`` (a length range)."""
    if not isinstance(field.node, YMap):
        return PrefixFilter.exact(network(field))
    m = field.mapping(PREFIX_KEYS)
    prefix = m.required("prefix", network)
    if not prefix.ok:
        m.finish()  # still report unknown keys
        raise Dropped
    net = prefix.get()
    length = integer(net.prefixlen, net.max_prefixlen)
    ge = m.optional("ge", length, net.prefixlen)
    le = m.optional("le", length, net.max_prefixlen)
    if ge.ok and le.ok and ge.get() > le.get():
        m.error("le", f"must be >= ge ({ge.get()})")
    m.finish()
    return PrefixFilter(net, ge.get(), le.get())


def graceful_restart(field: Field) -> GracefulRestart:
    defaults = GracefulRestart()
    m = field.mapping(GR_KEYS)
    enabled = m.optional("enabled", boolean, defaults.enabled)
    restart_time = m.optional("restart_time", integer(1, 4095), defaults.restart_time)
    m.finish()
    return GracefulRestart(enabled.get(), restart_time.get())


def bgp(node_router_id: NodeRouterId) -> Converter[Bgp]:
    def conv(field: Field) -> Bgp:
        m = field.mapping(BGP_KEYS)
        asn = m.required("asn", ASN)
        router_id = m.optional("router_id", ipv4_address, None)
        listen_port = m.optional("listen_port", integer(0, 65535), 179)
        install = m.optional("install_routes", boolean, False)
        peers = m.optional("peers", list_of(peer), ())
        adverts = m.optional("advertise", advertise, Advertise())
        imports = m.optional("import", list_of(prefix_filter), ())
        restart = m.optional("graceful_restart", graceful_restart, GracefulRestart())
        if peers.ok:
            _check_unique_peers(field, peers.get())
        chosen = router_id.value if router_id.value is not None else node_router_id
        if chosen is None:
            m.error("router_id", "required key missing (or set node.router_id)")
        m.finish()
        return Bgp(
            asn=asn.get(),
            # MISSING here means the node section failed: that error is reported already
            router_id=chosen if isinstance(chosen, ipaddress.IPv4Address) else _UNKNOWN_ID,
            listen_port=listen_port.get(),
            install_routes=install.get(),
            peers=peers.get(),
            advertise=adverts.get(),
            imports=imports.get(),
            graceful_restart=restart.get(),
        )

    return conv


_UNKNOWN_ID = ipaddress.IPv4Address(0)


def _check_unique_peers(field: Field, peers: tuple[BgpPeer, ...]) -> None:
    seen: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, int] = {}
    for index, item in enumerate(peers):
        if item.address in seen:
            path = f"{field.path}.peers[{index}].address"
            field.ctx.report_at(path, f"duplicate peer (also peers[{seen[item.address]}])")
        seen.setdefault(item.address, index)
