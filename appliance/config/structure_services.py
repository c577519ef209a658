"""Structure of ``vip_pools`` and ``services`` (with endpoints and probes)."""

from __future__ import annotations

from .model import Endpoint, NatMode, Probe, ProbeType, Protocol, Selection, Service, VipPool
from .reader import MISSING, Converter, Field, Invalid
from .scalars import (
    choice,
    community,
    integer,
    ip_address,
    large_community,
    list_of,
    name,
    network,
    text,
)

PORT = integer(1, 65535)

POOL_KEYS = ("name", "cidr")
PROBE_KEYS = (
    "type",
    "port",
    "path",
    "expect_status",
    "expect_body",
    "send",
    "expect",
    "interval_ms",
    "timeout_ms",
    "rise",
    "fall",
)
ENDPOINT_KEYS = ("address", "port", "weight", "probe")
SERVICE_KEYS = (
    "name",
    "vip",
    "pool",
    "port",
    "protocol",
    "mode",
    "selection",
    "persist_timeout_s",
    "source",
    "endpoints",
    "probe",
    "communities",
    "large_communities",
)


def vip_pool(field: Field) -> VipPool:
    m = field.mapping(POOL_KEYS)
    pool_name = m.required("name", name)
    cidr = m.required("cidr", network)
    m.finish()
    return VipPool(pool_name.get(), cidr.get())


def http_path(field: Field) -> str:
    value = text(field)
    if not value.startswith("/"):
        raise Invalid("must start with '/'")
    return value


def probe(field: Field) -> Probe:
    defaults = Probe()
    m = field.mapping(PROBE_KEYS)
    kind = m.optional("type", choice(ProbeType), defaults.type)
    # when "type" itself is wrong, accept every key rather than report follow-on errors
    kind_value = kind.value if isinstance(kind.value, ProbeType) else None
    is_http = kind_value is None or kind_value.is_http
    uses_port = kind_value is None or kind_value.uses_port
    is_udp = kind_value is None or kind_value.is_udp
    http_only = "for http and https probes"
    udp_only = "for udp probes"
    port = m.only_if(uses_port, "port", PORT, None, "for probe types with a port")
    path = m.only_if(is_http, "path", http_path, defaults.path, http_only)
    status = m.only_if(is_http, "expect_status", integer(100, 599), 200, http_only)
    body = m.only_if(is_http, "expect_body", text, None, http_only)
    send = m.only_if(is_udp, "send", text, None, udp_only)
    expect = m.only_if(is_udp, "expect", text, None, udp_only)
    interval = m.optional("interval_ms", integer(100), defaults.interval_ms)
    timeout = m.optional("timeout_ms", integer(10), defaults.timeout_ms)
    rise = m.optional("rise", integer(1, 100), defaults.rise)
    fall = m.optional("fall", integer(1, 100), defaults.fall)
    if interval.ok and timeout.ok and timeout.get() >= interval.get():
        m.error("timeout_ms", f"must be less than interval_ms ({interval.get()})")
    m.finish()
    return Probe(
        type=kind.get(),
        port=port.get(),
        path=path.get(),
        expect_status=status.get(),
        expect_body=body.get(),
        send=send.get(),
        expect=expect.get(),
        interval_ms=interval.get(),
        timeout_ms=timeout.get(),
        rise=rise.get(),
        fall=fall.get(),
    )


def endpoint(service_port: int) -> Converter[Endpoint]:
    def conv(field: Field) -> Endpoint:
        m = field.mapping(ENDPOINT_KEYS)
        address = m.required("address", ip_address)
        port = m.optional("port", PORT, service_port)
        weight = m.optional("weight", integer(1, 65535), 1)
        own_probe = m.optional("probe", probe, None)
        m.finish()
        return Endpoint(address.get(), port.get(), weight.get(), own_probe.get())

    return conv


def service(field: Field) -> Service:
    defaults = Service(name="", port=1, endpoints=())
    m = field.mapping(SERVICE_KEYS)
    service_name = m.required("name", name)
    vip = m.optional("vip", ip_address, None)
    pool = m.optional("pool", name, None)
    if m.present("vip") is None and m.present("pool") is None:
        m.error("vip", "required key missing (a service needs either vip or pool)")
    elif vip.ok and pool.ok and vip.get() is not None and pool.get() is not None:
        m.error("pool", "give either vip or pool, not both")
    port = m.required("port", PORT)
    protocol = m.optional("protocol", choice(Protocol), defaults.protocol)
    mode = m.optional("mode", choice(NatMode), defaults.mode)
    selection = m.optional("selection", choice(Selection), defaults.selection)
    persist = m.only_if(
        selection.value in (Selection.PERSIST, MISSING),
        "persist_timeout_s",
        integer(1),
        defaults.persist_timeout_s,
        "with selection persist",
    )
    source = m.only_if(
        mode.value in (NatMode.FULLNAT, MISSING), "source", ip_address, None, "with mode fullnat"
    )
    endpoint_port = port.value if isinstance(port.value, int) else 1
    endpoints = m.required("endpoints", list_of(endpoint(endpoint_port), min_items=1))
    service_probe = m.optional("probe", probe, None)
    communities = m.optional("communities", list_of(community), ())
    large = m.optional("large_communities", list_of(large_community), ())
    m.finish()
    return Service(
        name=service_name.get(),
        port=port.get(),
        endpoints=endpoints.get(),
        vip=vip.get(),
        pool=pool.get(),
        protocol=protocol.get(),
        mode=mode.get(),
        selection=selection.get(),
        persist_timeout_s=persist.get(),
        source=source.get(),
        probe=service_probe.get(),
        communities=communities.get(),
        large_communities=large.get(),
    )
