"""The dataplane's intent: what the eBPF maps must hold, as frozen values.

`services_from_intent` maps the node's intent (`appliance.intent`: services with their
resolved VIPs and endpoint health) onto these (pure). The programmer
(`bpf.programmer`) makes the pinned maps equal to a tuple of `DpService`, idempotently.

The layout is IPv4-only: services whose VIP or endpoints are IPv6 are left out, and
`skipped_services` names them so the caller can say so.
"""

from __future__ import annotations

import enum
import ipaddress

import attrs

from appliance.config.model import NatMode, Protocol
from appliance.config.model import Selection as ConfigSelection
from appliance.intent import NodeIntent, ServiceIntent

from .layout import Mode, Selection

__all__ = [
    "DpEndpoint",
    "DpService",
    "EndpointKey",
    "IpProto",
    "ServiceKey",
    "services_from_intent",
    "skipped_services",
]


class IpProto(enum.IntEnum):
    """IP protocol numbers, as the maps hold them."""

    TCP = 6
    UDP = 17


#: A service's identity in the maps: (VIP, port, protocol).
ServiceKey = tuple[ipaddress.IPv4Address, int, IpProto]
#: An endpoint's identity in its service: (address, port).
EndpointKey = tuple[ipaddress.IPv4Address, int]

_MODES: dict[NatMode, Mode] = {
    NatMode.DEFAULT: Mode.DEFAULT,
    NatMode.ONEARM: Mode.ONEARM,
    NatMode.FULLNAT: Mode.FULLNAT,
    NatMode.DSR: Mode.DSR,
}
_SELECTIONS: dict[ConfigSelection, Selection] = {
    ConfigSelection.ROUNDROBIN: Selection.ROUNDROBIN,
    ConfigSelection.WEIGHTED: Selection.WEIGHTED,
    ConfigSelection.HASH: Selection.HASH,
    ConfigSelection.MAGLEV: Selection.MAGLEV,
    ConfigSelection.PERSIST: Selection.PERSIST,
    ConfigSelection.LEASTCONN: Selection.LEASTCONN,
}
_PROTOCOLS: dict[Protocol, IpProto] = {Protocol.TCP: IpProto.TCP, Protocol.UDP: IpProto.UDP}


@attrs.frozen
class DpEndpoint:
    """An endpoint. ``active`` False: draining (keeps its connections, gets no new ones)."""

    address: ipaddress.IPv4Address
    port: int
    weight: int = 1
    active: bool = True


@attrs.frozen
class DpService:
    vip: ipaddress.IPv4Address
    port: int
    protocol: IpProto
    mode: Mode
    selection: Selection
    endpoints: tuple[DpEndpoint, ...]
    #: fullnat: the source address towards endpoints (the service's source, else the VIP);
    #: None for the other modes
    snat_addr: ipaddress.IPv4Address | None = None
    persist_timeout_s: int = 300
    name: str = ""  # for status and logs only

    @property
    def key(self) -> ServiceKey:
        return (self.vip, self.port, self.protocol)


def _ipv4(address: object) -> bool:
    return isinstance(address, ipaddress.IPv4Address)


def _supported(intent: ServiceIntent) -> bool:
    service = intent.service
    return (
        _ipv4(intent.vip)
        and (service.source is None or _ipv4(service.source))
        and all(_ipv4(ep.address) for ep in service.endpoints)
    )


def _dp_service(intent: ServiceIntent) -> DpService:
    service, vip = intent.service, intent.vip
    assert isinstance(vip, ipaddress.IPv4Address)
    snat: ipaddress.IPv4Address | None = None
    if service.mode is NatMode.FULLNAT:
        source = service.source if service.source is not None else vip
        assert isinstance(source, ipaddress.IPv4Address)
        snat = source
    endpoints = tuple(
        DpEndpoint(ipaddress.IPv4Address(ep.address), ep.port, ep.weight, up)
        for ep, up in zip(service.endpoints, intent.endpoints_up, strict=True)
    )
    return DpService(
        vip=vip,
        port=service.port,
        protocol=_PROTOCOLS[service.protocol],
        mode=_MODES[service.mode],
        selection=_SELECTIONS[service.selection],
        endpoints=endpoints,
        snat_addr=snat,
        persist_timeout_s=service.persist_timeout_s,
        name=service.name,
    )


def services_from_intent(intent: NodeIntent) -> tuple[DpService, ...]:
    """The dataplane services of the intent: every service with an IPv4 VIP (explicit or
    allocated), whatever the node's role. An endpoint the intent has down is not active: it
    gets no new connections and keeps its index, so the connections it has drain. A repeated
    (VIP, port, protocol) keeps the first service."""
    out: dict[ServiceKey, DpService] = {}
    for service in intent.services:
        if service.vip is None or not _supported(service):
            continue
        dp = _dp_service(service)
        out.setdefault(dp.key, dp)
    return tuple(out.values())


def skipped_services(intent: NodeIntent) -> tuple[str, ...]:
    """Names of services with a VIP that the (IPv4-only) dataplane cannot program."""
    return tuple(s.name for s in intent.services if s.vip is not None and not _supported(s))
