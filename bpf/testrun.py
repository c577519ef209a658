"""Run a loaded eBPF program on a packet with the kernel's BPF_PROG_TEST_RUN (bpf(2) cmd 10).

The kernel builds an skb from ``data`` (a whole Ethernet frame for TC programs), runs the
program once per ``repeat`` and hands back the program's return value and the packet as the
program left it. Nothing is sent: a ``bpf_redirect`` only shows as the return value
``TC_ACT_REDIRECT``. Helpers that look at the network (``bpf_fib_lookup``) see the network
namespace of the calling *thread*; `run_in_netns` runs a function in a thread that has entered
another namespace, so tests can give the program routes and neighbours of their own.

Only a few fields of the context may be set (the kernel rejects the others with EINVAL):
``mark``, ``priority``, ``ingress_ifindex``, ``ifindex`` (must exist in the namespace; the
skb's device), ``cb``, ``tstamp``, ``wire_len``, ``gso_segs``, ``gso_size``, ``hwtstamp``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Callable
from typing import TypeVar

import attrs

__all__ = [
    "TC_ACT_OK",
    "TC_ACT_REDIRECT",
    "TC_ACT_SHOT",
    "RunResult",
    "SkBuff",
    "prog_test_run",
    "run_in_netns",
]

TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7

BPF_PROG_TEST_RUN = 10
CLONE_NEWNET = 0x40000000
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_SYS_SETNS = {"x86_64": 308, "aarch64": 268, "riscv64": 268, "ppc64le": 350, "s390x": 339}

_libc = ctypes.CDLL(None, use_errno=True)

T = TypeVar("T")


class SkBuff(ctypes.Structure):
    """``struct __sk_buff`` (include/uapi/linux/bpf.h), 192 bytes."""

    _fields_ = [
        ("len", ctypes.c_uint32),
        ("pkt_type", ctypes.c_uint32),
        ("mark", ctypes.c_uint32),
        ("queue_mapping", ctypes.c_uint32),
        ("protocol", ctypes.c_uint32),
        ("vlan_present", ctypes.c_uint32),
        ("vlan_tci", ctypes.c_uint32),
        ("vlan_proto", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("tc_index", ctypes.c_uint32),
        ("cb", ctypes.c_uint32 * 5),
        ("hash", ctypes.c_uint32),
        ("tc_classid", ctypes.c_uint32),
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("napi_id", ctypes.c_uint32),
        ("family", ctypes.c_uint32),
        ("remote_ip4", ctypes.c_uint32),
        ("local_ip4", ctypes.c_uint32),
        ("remote_ip6", ctypes.c_uint32 * 4),
        ("local_ip6", ctypes.c_uint32 * 4),
        ("remote_port", ctypes.c_uint32),
        ("local_port", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("flow_keys", ctypes.c_uint64),
        ("tstamp", ctypes.c_uint64),
        ("wire_len", ctypes.c_uint32),
        ("gso_segs", ctypes.c_uint32),
        ("sk", ctypes.c_uint64),
        ("gso_size", ctypes.c_uint32),
        ("tstamp_type", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
        ("hwtstamp", ctypes.c_uint64),
    ]


assert ctypes.sizeof(SkBuff) == 192


class _TestAttr(ctypes.Structure):
    """The ``test`` member of ``union bpf_attr``."""

    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


@attrs.frozen
class RunResult:
    """What one test run gave: the program's return value (the last run's, with ``repeat``),
    the packet after the program, the mean run time in ns and the context as it was left."""

    retval: int
    data: bytes
    duration_ns: int
    ctx: SkBuff | None


def _syscall_number(table: dict[str, int]) -> int:
    machine = platform.machine()
    if machine not in table:
        raise OSError(f"no syscall number known for {machine}")
    return table[machine]


def prog_test_run(
    prog_fd: int,
    data: bytes,
    *,
    ctx: SkBuff | None = None,
    repeat: int = 1,
    data_out_size: int | None = None,
) -> RunResult:
    """Run program ``prog_fd`` on ``data`` (for TC programs an Ethernet frame).

    ``ctx`` sets the allowed ``__sk_buff`` fields (e.g. ``ifindex`` / ``ingress_ifindex``);
    the returned result carries the context as the program left it. ``data_out_size`` bounds
    the returned packet (default: room for 256 bytes of growth). Raises `OSError` with the
    syscall's errno (EINVAL for a forbidden context field, ENODEV for an unknown ifindex,
    ENOSPC when the output did not fit).
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    data_in = ctypes.create_string_buffer(data, len(data))
    out_size = data_out_size if data_out_size is not None else len(data) + 256
    data_out = ctypes.create_string_buffer(out_size)
    attr = _TestAttr(
        prog_fd=prog_fd,
        data_size_in=len(data),
        data_size_out=out_size,
        data_in=ctypes.addressof(data_in),
        data_out=ctypes.addressof(data_out),
        repeat=repeat,
    )
    ctx_in: SkBuff | None = None
    ctx_out: SkBuff | None = None
    if ctx is not None:
        ctx_in = SkBuff.from_buffer_copy(bytes(ctx))
        ctx_out = SkBuff()
        attr.ctx_size_in = attr.ctx_size_out = ctypes.sizeof(SkBuff)
        attr.ctx_in = ctypes.addressof(ctx_in)
        attr.ctx_out = ctypes.addressof(ctx_out)
    rc = _libc.syscall(
        _syscall_number(_SYS_BPF),
        BPF_PROG_TEST_RUN,
        ctypes.byref(attr),
        ctypes.sizeof(attr),
    )
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"BPF_PROG_TEST_RUN: {os.strerror(err)}")
    return RunResult(
        retval=attr.retval,
        data=data_out.raw[: attr.data_size_out],
        duration_ns=attr.duration,
        ctx=ctx_out,
    )


def run_in_netns(netns_path: str, func: Callable[[], T], timeout: float = 30.0) -> T:
    """Call ``func`` in a new thread that first enters the network namespace at ``netns_path``
    (e.g. ``/run/netns/NAME``) with setns(2), and return its result (or raise its error).

    setns changes only the calling thread, so the caller and the rest of the process stay
    where they are; the thread ends with the call.
    """
    box: dict[str, object] = {}

    def body() -> None:
        try:
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.syscall(_syscall_number(_SYS_SETNS), fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns_path}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["result"] = func()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=body, name=f"netns:{netns_path}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"call in {netns_path} still running after {timeout} s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]
