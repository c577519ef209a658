"""The conntrack map's keys and entries as numpy record arrays: many at once, no Python object
per connection (a bulk resync writes ~100,000 of them).

The dtypes are derived from the ctypes structures of `bpf.layout`, so their fields, offsets,
padding and size are the map's. Addresses and ports the program keeps in network order stay
as raw bytes: they are only moved between fields, never read as numbers here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np

from .layout import CtEntry, CtKey

__all__ = ["ENTRY_DTYPE", "KEY_DTYPE", "Records", "field_bytes", "of_pairs", "records", "table"]

#: a numpy record array (an ``np.ndarray`` of one of the dtypes below)
Records = np.ndarray[Any, np.dtype[np.void]]

KEY_DTYPE = cast("np.dtype[np.void]", np.dtype(CtKey))
ENTRY_DTYPE = cast("np.dtype[np.void]", np.dtype(CtEntry))


def records(dtype: np.dtype[np.void], blob: bytes) -> Records:
    """The records in ``blob`` (a whole number of them), as a writable array of their own."""
    if len(blob) % dtype.itemsize:
        raise ValueError(
            f"{len(blob)} bytes is not a whole number of {dtype.itemsize}-byte records"
        )
    return np.frombuffer(blob, dtype).copy()


def field_bytes(array: Records, offset: int, size: int) -> Records:
    """A view of ``size`` raw bytes at ``offset`` of every record of ``array`` (writable when
    ``array`` is): how a run of network-order fields is copied in one assignment."""
    return array.view(_raw_view(array.dtype.itemsize, offset, size))["raw"]


@functools.cache
def _raw_view(itemsize: int, offset: int, size: int) -> np.dtype[np.void]:
    spec = {"names": ["raw"], "formats": [f"V{size}"], "offsets": [offset], "itemsize": itemsize}
    return cast("np.dtype[np.void]", np.dtype(spec))  # type: ignore[call-overload]


def of_pairs(items: Sequence[tuple[CtKey, CtEntry]]) -> tuple[Records, Records]:
    """(key, entry) ctypes pairs as a keys array and an entries array."""
    keys = records(KEY_DTYPE, b"".join(bytes(key) for key, _ in items))
    return keys, records(ENTRY_DTYPE, b"".join(bytes(entry) for _, entry in items))


def table(blobs: Iterable[tuple[bytes, bytes]]) -> tuple[Records, Records]:
    """The conntrack map's keys and entries from its batch walk (`BpfMap.batch_blobs`)."""
    key_parts, entry_parts = [], []
    for keys, entries in blobs:
        key_parts.append(keys)
        entry_parts.append(entries)
    return records(KEY_DTYPE, b"".join(key_parts)), records(ENTRY_DTYPE, b"".join(entry_parts))
