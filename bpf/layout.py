"""The dataplane's shared layout, defined once: constants, map value/key structs and maps.

Python (the programmer, conntrack access, tests) uses the ctypes structures here; the C
program gets the same definitions as a generated header (`render_header`), prepended to
``lb.c`` when bcc compiles it. Nothing is written twice by hand.

Byte order: fields named in a structure's ``_be_`` tuple hold network-byte-order values (they
are compared with packet fields as they are); set them with `be32` / `be16` and read them with
`from_be32` / `from_be16`.

Maps (pinned under ``/sys/fs/bpf/triolb/<node>/`` by the loader, so they outlive the daemon):

==============  =============  =====================================================
map             kind           key → value
==============  =============  =====================================================
settings        array[1]       0 → Settings (layout version, node id)
services        hash           SvcKey (VIP, port, proto) → Service (id, mode, slot...)
endpoints       array          svc id * SLOTS + slot → EndpointSet (stable indexes)
tables          array          svc id * SLOTS + slot → SelectTable (endpoint indexes)
conntrack       lru_hash       CtKey (packet 5-tuple) → CtEntry (translation, state)
persist         lru_hash       PersistKey (svc id, client) → PersistEntry
rr_state        array          svc id → u32 round-robin counter
ep_active       array          svc id * MAX_ENDPOINTS + ep → s64 open connections
svc_stats       percpu_array   svc id → Stats
ep_stats        percpu_array   svc id * MAX_ENDPOINTS + ep → Stats
ifaddrs         hash           ifindex → be32 address (one-arm SNAT source)
events          ringbuf        CtEvent (new / established / closed connections)
==============  =============  =====================================================

Endpoint sets and selection tables are double-buffered: the programmer writes the slot the
service does not use, then flips ``Service.slot`` with one (atomic) hash-map update, so no
packet ever sees a half-written set.
"""

from __future__ import annotations

import ctypes
import enum
import ipaddress
import socket
import sys
from collections.abc import Iterator

import attrs

__all__ = [
    "CT_MAX",
    "LAYOUT_VERSION",
    "MAPS",
    "MAX_ENDPOINTS",
    "MAX_SERVICES",
    "MAX_TABLE",
    "SLOTS",
    "CtEntry",
    "CtEvent",
    "CtKey",
    "CtState",
    "Endpoint",
    "EndpointSet",
    "MapSpec",
    "Mode",
    "PersistEntry",
    "PersistKey",
    "SelectTable",
    "Selection",
    "Service",
    "Settings",
    "Stats",
    "SvcKey",
    "be16",
    "be32",
    "from_be16",
    "from_be32",
    "render_header",
]

#: Bumped whenever a struct or map below changes: pinned maps of another version are never
#: adopted (the loader reports it and starts from empty maps, explicitly).
LAYOUT_VERSION = 2  # 2: a DSR entry's nat_dst is the endpoint

MAX_SERVICES = 256
MAX_ENDPOINTS = 64
SLOTS = 2
#: Selection table entries per service: Maglev needs a prime >= 100 x endpoints (6421 for 64).
MAX_TABLE = 8192
CT_MAX = 262_144
PERSIST_MAX = 65_536
RINGBUF_PAGES = 256  # 1 MiB of events
#: Full-NAT source ports are split between nodes: node id (mod PORT_PARTITIONS) picks a block.
PORT_FIRST = 1024
PORT_PARTITIONS = 4


class Mode(enum.IntEnum):
    DEFAULT = 0  # DNAT; client address kept, replies return through the node
    ONEARM = 1  # DNAT + SNAT to the egress interface's address
    FULLNAT = 2  # DNAT + SNAT to the VIP or the service's floating source
    DSR = 3  # MAC rewrite only


class Selection(enum.IntEnum):
    ROUNDROBIN = 0
    WEIGHTED = 1
    PERSIST = 2
    LEASTCONN = 3
    HASH = 4
    MAGLEV = 5


class CtState(enum.IntEnum):
    """Connection states; each has its own idle timeout (`CT_TIMEOUT_S`)."""

    SYN_SENT = 1
    ESTABLISHED = 2
    FIN_WAIT = 3
    CLOSED = 4  # after RST or both FINs
    UDP = 5
    ICMP = 6


CT_TIMEOUT_S: dict[CtState, int] = {
    CtState.SYN_SENT: 30,
    CtState.ESTABLISHED: 3600,
    CtState.FIN_WAIT: 30,
    CtState.CLOSED: 10,
    CtState.UDP: 60,
    CtState.ICMP: 30,
}

# CtEntry.flags
CT_REPLY = 0x1  # the entry translates the reply direction
CT_REMOTE = 0x2  # written by conntrack sync from a peer
CT_REPORTED = 0x4  # its "established" event was sent
CT_DSR = 0x8  # direct server return: forwarded by MAC, no reply entry

# Settings.flags
SETTINGS_EVENTS = 0x1  # emit connection events (only while someone reads them: sync)

# Endpoint.flags
EP_ACTIVE = 0x1  # may be selected for new connections
EP_DRAINING = 0x2  # existing connections only

# CtEvent.type
EV_NEW = 1
EV_ESTABLISHED = 2
EV_CLOSED = 3


def be32(address: ipaddress.IPv4Address | str) -> int:
    """The u32 whose memory holds ``address`` in network byte order."""
    return int.from_bytes(ipaddress.IPv4Address(address).packed, sys.byteorder)


def from_be32(value: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(value.to_bytes(4, sys.byteorder))


def be16(port: int) -> int:
    return socket.htons(port)


def from_be16(value: int) -> int:
    return socket.ntohs(value)


class _Struct(ctypes.Structure):
    """A C struct; ``_be_`` names the fields holding network-byte-order values."""

    _be_: tuple[str, ...] = ()
    _c_name_: str = ""


u8, u16, u32, u64, s64 = (
    ctypes.c_uint8,
    ctypes.c_uint16,
    ctypes.c_uint32,
    ctypes.c_uint64,
    ctypes.c_int64,
)


class Settings(_Struct):
    _c_name_ = "settings"
    _fields_ = [("version", u32), ("node_id", u32), ("flags", u64)]


class SvcKey(_Struct):
    _c_name_ = "svc_key"
    _be_ = ("vip", "port")
    _fields_ = [("vip", u32), ("port", u16), ("proto", u8), ("pad", u8)]


class Service(_Struct):
    _c_name_ = "service"
    _be_ = ("snat_addr",)
    _fields_ = [
        ("id", u32),
        ("mode", u8),  # Mode
        ("selection", u8),  # Selection
        ("slot", u8),  # the endpoint set / table slot in use
        ("flags", u8),
        ("snat_addr", u32),  # fullnat: the source towards endpoints
        ("persist_timeout_s", u32),
        ("port_base", u16),  # fullnat: this node's source-port block
        ("port_count", u16),
    ]


class Endpoint(_Struct):
    _c_name_ = "endpoint"
    _be_ = ("addr", "port")
    _fields_ = [
        ("addr", u32),
        ("port", u16),
        ("weight", u16),
        ("mac", u8 * 6),  # dsr: the endpoint's MAC
        ("flags", u8),  # EP_ACTIVE, EP_DRAINING; 0: unused index
        ("pad", u8),
    ]


class EndpointSet(_Struct):
    """Endpoints by stable index (an endpoint keeps its index while it exists)."""

    _c_name_ = "endpoint_set"
    _fields_ = [("count", u32), ("pad", u32), ("eps", Endpoint * MAX_ENDPOINTS)]


class SelectTable(_Struct):
    """Endpoint indexes to pick from: Maglev's lookup table, the weighted round-robin
    sequence, or the active endpoints once each (round robin, hash)."""

    _c_name_ = "select_table"
    _fields_ = [("size", u32), ("pad", u32), ("entries", u16 * MAX_TABLE)]


class CtKey(_Struct):
    _c_name_ = "ct_key"
    _be_ = ("src", "dst", "sport", "dport")
    _fields_ = [
        ("src", u32),
        ("dst", u32),
        ("sport", u16),  # ICMP echo: the identifier
        ("dport", u16),  # ICMP echo: the identifier too
        ("proto", u8),
        ("pad", u8 * 3),
    ]


class CtEntry(_Struct):
    """How to rewrite a packet matching the key: source and destination become ``nat_*``."""

    _c_name_ = "ct_entry"
    _be_ = ("nat_src", "nat_dst", "nat_sport", "nat_dport")
    _fields_ = [
        ("nat_src", u32),
        ("nat_dst", u32),
        ("nat_sport", u16),
        ("nat_dport", u16),
        ("svc_id", u32),
        ("ep_index", u16),
        ("state", u8),  # CtState
        ("flags", u8),  # CT_REPLY, CT_REMOTE, CT_REPORTED
        ("ep_mac", u8 * 6),  # dsr
        ("fin_seen", u8),  # bit 0: FIN from the client side, bit 1: from the endpoint side
        ("pad", u8),
        ("created_ns", u64),
        ("last_ns", u64),  # bpf_ktime_get_ns (CLOCK_MONOTONIC) of the last packet
        ("packets", u64),
        ("bytes", u64),
    ]


class PersistKey(_Struct):
    _c_name_ = "persist_key"
    _be_ = ("client",)
    _fields_ = [("svc_id", u32), ("client", u32)]


class PersistEntry(_Struct):
    _c_name_ = "persist_entry"
    _fields_ = [("ep_index", u32), ("pad", u32), ("last_ns", u64)]


class Stats(_Struct):
    _c_name_ = "stats"
    _fields_ = [("packets", u64), ("bytes", u64), ("conns", u64), ("drops", u64)]


class CtEvent(_Struct):
    """A connection event on the ring buffer: the forward entry's key and entry."""

    _c_name_ = "ct_event"
    _fields_ = [("type", u32), ("pad", u32), ("key", CtKey), ("entry", CtEntry)]


@attrs.frozen
class MapSpec:
    name: str
    kind: str  # bcc table type: "hash", "lru_hash", "array", "percpu_array", "ringbuf"
    key: str  # C type
    value: str  # C type
    max_entries: int
    pinned: bool = True


MAPS: tuple[MapSpec, ...] = (
    MapSpec("settings", "array", "u32", "struct settings", 1),
    MapSpec("services", "hash", "struct svc_key", "struct service", MAX_SERVICES),
    MapSpec("endpoints", "array", "u32", "struct endpoint_set", MAX_SERVICES * SLOTS),
    MapSpec("tables", "array", "u32", "struct select_table", MAX_SERVICES * SLOTS),
    MapSpec("conntrack", "lru_hash", "struct ct_key", "struct ct_entry", CT_MAX),
    MapSpec("persist", "lru_hash", "struct persist_key", "struct persist_entry", PERSIST_MAX),
    MapSpec("rr_state", "array", "u32", "u32", MAX_SERVICES),
    MapSpec("ep_active", "array", "u32", "s64", MAX_SERVICES * MAX_ENDPOINTS),
    MapSpec("svc_stats", "percpu_array", "u32", "struct stats", MAX_SERVICES),
    MapSpec("ep_stats", "percpu_array", "u32", "struct stats", MAX_SERVICES * MAX_ENDPOINTS),
    MapSpec("ifaddrs", "hash", "u32", "u32", 256),
    MapSpec("events", "ringbuf", "", "struct ct_event", RINGBUF_PAGES, pinned=False),
)

STRUCTS: tuple[type[_Struct], ...] = (
    Settings,
    SvcKey,
    Service,
    Endpoint,
    EndpointSet,
    SelectTable,
    CtKey,
    CtEntry,
    PersistKey,
    PersistEntry,
    Stats,
    CtEvent,
)

_C_SCALARS: dict[type[object], str] = {
    ctypes.c_uint8: "u8",
    ctypes.c_uint16: "u16",
    ctypes.c_uint32: "u32",
    ctypes.c_uint64: "u64",
    ctypes.c_int64: "s64",
}
_BE = {ctypes.c_uint16: "__be16", ctypes.c_uint32: "__be32"}


def _c_field(struct: type[_Struct], name: str, ctype: type[object]) -> str:
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        element: type[object] = getattr(ctype, "_type_")  # noqa: B009
        return f"{_c_type(element)} {name}[{getattr(ctype, '_length_')}]"  # noqa: B009
    if name in struct._be_:
        return f"{_BE[ctype]} {name}"  # type: ignore[index]
    return f"{_c_type(ctype)} {name}"


def _c_type(ctype: type[object]) -> str:
    if isinstance(ctype, type) and issubclass(ctype, _Struct):
        return f"struct {ctype._c_name_}"
    return _C_SCALARS[ctype]


def _struct_lines(struct: type[_Struct]) -> Iterator[str]:
    yield f"struct {struct._c_name_} {{"
    for field in struct._fields_:
        name, ctype = field[0], field[1]
        yield f"    {_c_field(struct, name, ctype)};"
    yield "};"
    yield (
        f"_Static_assert(sizeof(struct {struct._c_name_}) == {ctypes.sizeof(struct)}, "
        f'"layout of struct {struct._c_name_}");'
    )


def _constants() -> dict[str, int]:
    out = {
        "LAYOUT_VERSION": LAYOUT_VERSION,
        "MAX_SERVICES": MAX_SERVICES,
        "MAX_ENDPOINTS": MAX_ENDPOINTS,
        "SLOTS": SLOTS,
        "MAX_TABLE": MAX_TABLE,
        "CT_REPLY": CT_REPLY,
        "CT_REMOTE": CT_REMOTE,
        "CT_REPORTED": CT_REPORTED,
        "CT_DSR": CT_DSR,
        "EP_ACTIVE": EP_ACTIVE,
        "EP_DRAINING": EP_DRAINING,
        "EV_NEW": EV_NEW,
        "EV_ESTABLISHED": EV_ESTABLISHED,
        "EV_CLOSED": EV_CLOSED,
        "SETTINGS_EVENTS": SETTINGS_EVENTS,
    }
    out.update({f"MODE_{m.name}": m.value for m in Mode})
    out.update({f"SEL_{s.name}": s.value for s in Selection})
    out.update({f"CT_{s.name}": s.value for s in CtState})
    out.update({f"CT_TIMEOUT_{s.name}_S": t for s, t in CT_TIMEOUT_S.items()})
    return out


def _map_line(spec: MapSpec, pin_dir: str | None) -> str:
    if spec.kind == "ringbuf":
        return f"BPF_RINGBUF_OUTPUT({spec.name}, {spec.max_entries});"
    args = f'"{spec.kind}", {spec.key}, {spec.value}, {spec.name}, {spec.max_entries}'
    if pin_dir is not None and spec.pinned:
        return f'BPF_TABLE_PINNED({args}, "{pin_dir}/{spec.name}");'
    return f"BPF_TABLE({args});"


def render_header(pin_dir: str | None) -> str:
    """The C header for ``lb.c``: constants, structs (size-checked), and map declarations,
    pinned under ``pin_dir`` (None: not pinned, e.g. for program tests)."""
    lines = ["/* generated by bpf/layout.py: do not edit */"]
    lines += [f"#define {name} {value}" for name, value in _constants().items()]
    for struct in STRUCTS:
        lines += ["", *_struct_lines(struct)]
    lines.append("")
    lines += [_map_line(spec, pin_dir) for spec in MAPS]
    return "\n".join(lines) + "\n"
