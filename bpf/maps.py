"""Typed access to the dataplane's maps through their file descriptors.

Keys and values are the ctypes structures of `bpf.layout` (or ctypes scalars), so nothing
depends on the classes bcc generates. A map is reached either through the fds of a loaded
program (`Maps.from_fds`, the loader) or by opening the pins of a node (`Maps.open_pinned`,
for tools that do not compile anything, e.g. ``triolb dataplane``).

The calls are blocking system calls: in the daemon they run in worker threads.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import attrs

from . import layout
from .layout import MAPS, CtEntry, CtKey, EndpointSet, SelectTable, Service, Settings, Stats, SvcKey

__all__ = [
    "BpfMap",
    "Maps",
    "PerCpuMap",
    "obj_get",
    "possible_cpus",
]

K = TypeVar("K", bound=ctypes.Structure | ctypes.c_uint32)
V = TypeVar("V", bound=ctypes.Structure | ctypes.c_uint32 | ctypes.c_int64)

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2


_LIBS: list[Any] = []


def _lib() -> Any:
    """libbcc (which carries libbpf's map calls), with the signatures we need declared."""
    if not _LIBS:
        from bcc.libbcc import lib

        lib.bpf_obj_get.restype = ctypes.c_int
        lib.bpf_obj_get.argtypes = [ctypes.c_char_p]
        _LIBS.append(lib)
    return _LIBS[0]


_HOLDING: list[Any] = []


def _lookup_holding_gil() -> Any:
    """libbpf's element lookup called without releasing the GIL: a lookup is a short system
    call, and a worker thread looking up many keys one by one would otherwise hand the GIL to
    the event loop at every key and wait to get it back (a convoy that made a bulk apply
    several times slower than its system calls)."""
    if not _HOLDING:
        call = ctypes.PyDLL("libbpf.so.1").bpf_map_lookup_elem
        call.restype = ctypes.c_int
        call.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        _HOLDING.append(call)
    return _HOLDING[0]


def _check(ret: int, what: str, name: str) -> None:
    """Raise for a failed libbpf call (they return -errno)."""
    if ret < 0:
        err = -ret if ret < -1 else (ctypes.get_errno() or errno.EIO)
        raise OSError(err, f"{what} on map {name}: {os.strerror(err)}")


def obj_get(path: Path) -> int:
    """Open a pinned BPF object (BPF_OBJ_GET); returns a new fd the caller closes."""
    fd = int(_lib().bpf_obj_get(str(path).encode()))
    if fd < 0:
        err = -fd if fd < -1 else (ctypes.get_errno() or errno.ENOENT)
        raise OSError(err, f"bpf_obj_get {path}: {os.strerror(err)}", str(path))
    return fd


def possible_cpus() -> int:
    """How many values a per-CPU map holds per key (the kernel's possible CPUs)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


class _MapFd(Generic[K, V]):
    """A map's fd with its key and value types. ``owns_fd``: `close` closes the fd."""

    def __init__(
        self, name: str, fd: int, key: type[K], value: type[V], *, owns_fd: bool = False
    ) -> None:
        self.name = name
        self.fd = fd
        self.key_type = key
        self.value_type = value
        self._owns_fd = owns_fd

    def close(self) -> None:
        if self._owns_fd and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class BpfMap(_MapFd[K, V]):
    """A map with ctypes keys and values."""

    def lookup(self, key: K) -> V | None:
        value = self.value_type()
        if _lib().bpf_lookup_elem(self.fd, ctypes.byref(key), ctypes.byref(value)) != 0:
            return None
        return value

    def lookup_raw(
        self, key: bytes, into: ctypes.Array[ctypes.c_char] | None = None
    ) -> bytes | None:
        """`lookup` on raw key bytes, answering raw value bytes (no ctypes object each);
        ``into``: a buffer of the value's size to reuse (a loop over many keys)."""
        value = into if into is not None else ctypes.create_string_buffer(self.value_size)
        if _lookup_holding_gil()(self.fd, key, value) != 0:
            return None
        return value.raw

    @property
    def value_size(self) -> int:
        return ctypes.sizeof(self.value_type)

    def update(self, key: K, value: V, flags: int = BPF_ANY) -> None:
        ret = _lib().bpf_update_elem(self.fd, ctypes.byref(key), ctypes.byref(value), flags)
        _check(int(ret), "update", self.name)

    def update_batch(self, keys: bytes, values: bytes) -> None:
        """Write many entries, given as their raw keys and values laid end to end, with a few
        system calls (BPF_MAP_UPDATE_BATCH), in order; one by one where the kernel cannot
        batch this map."""
        lib = _lib()
        key_size, value_size = ctypes.sizeof(self.key_type), ctypes.sizeof(self.value_type)
        total = len(keys) // key_size
        if len(keys) != total * key_size or len(values) != total * value_size:
            raise ValueError(f"update_batch on map {self.name}: keys and values do not pair up")
        for start in range(0, total, UPDATE_CHUNK):
            chunk = min(UPDATE_CHUNK, total - start)
            chunk_keys = keys[start * key_size : (start + chunk) * key_size]
            chunk_values = values[start * value_size : (start + chunk) * value_size]
            count = ctypes.c_uint32(chunk)
            ret = int(lib.bpf_update_batch(self.fd, chunk_keys, chunk_values, ctypes.byref(count)))
            if ret == 0:
                continue
            done = count.value if 0 < count.value < chunk else 0
            for i in range(done, chunk):
                key = chunk_keys[i * key_size : (i + 1) * key_size]
                value = chunk_values[i * value_size : (i + 1) * value_size]
                _check(int(lib.bpf_update_elem(self.fd, key, value, BPF_ANY)), "update", self.name)

    def delete(self, key: K) -> bool:
        """Remove ``key``; False when it was not there."""
        return bool(_lib().bpf_delete_elem(self.fd, ctypes.byref(key)) == 0)

    def keys(self, limit: int | None = None) -> Iterator[K]:
        """Keys in the kernel's order (get-next-key); at most ``limit``. A key deleted while
        iterating restarts the walk from the first key, as the kernel does."""
        lib = _lib()
        current: K | None = None
        seen = 0
        while limit is None or seen < limit:
            following = self.key_type()
            previous = ctypes.byref(current) if current is not None else None
            if lib.bpf_get_next_key(self.fd, previous, ctypes.byref(following)) != 0:
                return
            yield following
            current = following
            seen += 1

    def __iter__(self) -> Iterator[K]:
        return self.keys()

    def items(self, limit: int | None = None) -> Iterator[tuple[K, V]]:
        for key in self.keys(limit):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def batch_items(self, chunk: int = 4096) -> Iterator[tuple[K, V]]:
        """Every entry of a hash map, ``chunk`` at a time (BPF_MAP_LOOKUP_BATCH: a few system
        calls for the whole map instead of two per entry). Entries changing meanwhile may be
        seen or not, as with any walk of a live map."""
        for raw_key, raw_value in self.batch_raw(chunk):
            yield (
                cast(K, self.key_type.from_buffer_copy(raw_key)),
                cast(V, self.value_type.from_buffer_copy(raw_value)),
            )

    def batch_raw(self, chunk: int = 4096) -> Iterator[tuple[bytes, bytes]]:
        """`batch_items` as raw key and value bytes (no ctypes object per entry: a walk of a
        full table that only filters and re-encodes is several times faster)."""
        key_size, value_size = ctypes.sizeof(self.key_type), ctypes.sizeof(self.value_type)
        for raw_keys, raw_values in self.batch_blobs(chunk):
            for i in range(len(raw_keys) // key_size):
                yield (
                    raw_keys[i * key_size : (i + 1) * key_size],
                    raw_values[i * value_size : (i + 1) * value_size],
                )

    def batch_blobs(self, chunk: int = 4096) -> Iterator[tuple[bytes, bytes]]:
        """Every entry of a hash map, ``chunk`` at a time as the raw keys and values laid end
        to end (BPF_MAP_LOOKUP_BATCH), for a walk of the whole table with no Python object
        per entry (`bpf.records`)."""
        lib = _lib()
        keys = (self.key_type * chunk)()
        values = (self.value_type * chunk)()
        key_size, value_size = ctypes.sizeof(self.key_type), ctypes.sizeof(self.value_type)
        token = ctypes.c_uint64(0)  # the hash map's bucket cursor (u32, room to spare)
        first = True
        while True:
            count = ctypes.c_uint32(chunk)
            ret = int(
                lib.bpf_lookup_batch(
                    self.fd,
                    None if first else ctypes.cast(ctypes.byref(token), _U32_P),
                    ctypes.cast(ctypes.byref(token), _U32_P),
                    ctypes.byref(keys),
                    ctypes.byref(values),
                    ctypes.byref(count),
                )
            )
            if count.value:
                yield (
                    ctypes.string_at(keys, count.value * key_size),
                    ctypes.string_at(values, count.value * value_size),
                )
            if ret == -errno.ENOENT or (ret == -1 and ctypes.get_errno() == errno.ENOENT):
                return
            _check(ret, "lookup batch", self.name)
            if count.value == 0:
                return
            first = False


_U32_P = ctypes.POINTER(ctypes.c_uint32)
#: entries per BPF_MAP_UPDATE_BATCH call
UPDATE_CHUNK = 4096


class PerCpuMap(_MapFd[K, V]):
    """A per-CPU map: one value per possible CPU for each key."""

    def __init__(
        self, name: str, fd: int, key: type[K], value: type[V], *, owns_fd: bool = False
    ) -> None:
        super().__init__(name, fd, key, value, owns_fd=owns_fd)
        self.cpus = possible_cpus()
        size = (ctypes.sizeof(value) + 7) // 8 * 8
        if size != ctypes.sizeof(value):
            raise ValueError(f"{value.__name__}: per-CPU values must be 8-byte multiples")
        self._array_type = value * self.cpus

    def lookup(self, key: K) -> list[V] | None:
        values = self._array_type()
        if _lib().bpf_lookup_elem(self.fd, ctypes.byref(key), ctypes.byref(values)) != 0:
            return None
        return list(values)

    def zero(self, key: K) -> None:
        """Set every CPU's value of ``key`` to zero."""
        values = self._array_type()
        ret = _lib().bpf_update_elem(self.fd, ctypes.byref(key), ctypes.byref(values), 0)
        _check(int(ret), "update", self.name)


def sum_stats(values: list[Stats] | None) -> Stats:
    """A per-CPU `Stats` value summed over the CPUs."""
    total = Stats()
    for value in values or []:
        total.packets += value.packets
        total.bytes += value.bytes
        total.conns += value.conns
        total.drops += value.drops
    return total


U32 = ctypes.c_uint32
S64 = ctypes.c_int64
PINNED_NAMES: tuple[str, ...] = tuple(spec.name for spec in MAPS if spec.pinned)


@attrs.define
class Maps:
    """Every pinned map of the layout, typed."""

    settings: BpfMap[ctypes.c_uint32, Settings]
    services: BpfMap[SvcKey, Service]
    endpoints: BpfMap[ctypes.c_uint32, EndpointSet]
    tables: BpfMap[ctypes.c_uint32, SelectTable]
    conntrack: BpfMap[CtKey, CtEntry]
    persist: BpfMap[layout.PersistKey, layout.PersistEntry]
    rr_state: BpfMap[ctypes.c_uint32, ctypes.c_uint32]
    ep_active: BpfMap[ctypes.c_uint32, ctypes.c_int64]
    svc_stats: PerCpuMap[ctypes.c_uint32, Stats]
    ep_stats: PerCpuMap[ctypes.c_uint32, Stats]
    ifaddrs: BpfMap[ctypes.c_uint32, ctypes.c_uint32]

    @classmethod
    def from_fds(cls, fds: Mapping[str, int], *, owns_fds: bool = False) -> Maps:
        o = owns_fds
        return cls(
            settings=BpfMap("settings", fds["settings"], U32, Settings, owns_fd=o),
            services=BpfMap("services", fds["services"], SvcKey, Service, owns_fd=o),
            endpoints=BpfMap("endpoints", fds["endpoints"], U32, EndpointSet, owns_fd=o),
            tables=BpfMap("tables", fds["tables"], U32, SelectTable, owns_fd=o),
            conntrack=BpfMap("conntrack", fds["conntrack"], CtKey, CtEntry, owns_fd=o),
            persist=BpfMap(
                "persist", fds["persist"], layout.PersistKey, layout.PersistEntry, owns_fd=o
            ),
            rr_state=BpfMap("rr_state", fds["rr_state"], U32, U32, owns_fd=o),
            ep_active=BpfMap("ep_active", fds["ep_active"], U32, S64, owns_fd=o),
            svc_stats=PerCpuMap("svc_stats", fds["svc_stats"], U32, Stats, owns_fd=o),
            ep_stats=PerCpuMap("ep_stats", fds["ep_stats"], U32, Stats, owns_fd=o),
            ifaddrs=BpfMap("ifaddrs", fds["ifaddrs"], U32, U32, owns_fd=o),
        )

    @classmethod
    def open_pinned(cls, pin_dir: Path) -> Maps:
        """Open a node's pinned maps (no compilation); `close` releases the fds."""
        fds: dict[str, int] = {}
        try:
            for name in PINNED_NAMES:
                fds[name] = obj_get(pin_dir / name)
        except OSError:
            for fd in fds.values():
                os.close(fd)
            raise
        return cls.from_fds(fds, owns_fds=True)

    def close(self) -> None:
        for name in PINNED_NAMES:
            getattr(self, name).close()


def read_settings(pin_dir: Path) -> Settings | None:
    """The pinned ``settings`` value of a node, or None when it is not pinned."""
    try:
        fd = obj_get(pin_dir / "settings")
    except OSError:
        return None
    try:
        return BpfMap("settings", fd, U32, Settings).lookup(U32(0))
    finally:
        os.close(fd)
