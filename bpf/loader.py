"""Compile, pin, adopt and attach the dataplane program.

`Dataplane.load` compiles ``lb.c`` with bcc, its maps pinned under
``/sys/fs/bpf/triolb/<node>/``: a restarted daemon finds the pins and bcc reuses them, so the
services, endpoints and connections programmed before survive (`LoadResult.adopted`). Pins of
another layout version are never read as if they were ours: they are removed, before
compiling, and the load says so (`LoadResult.layout_reset`).

`Dataplane.attach` puts the program on an interface's TC ingress (and egress) hook with a
fixed priority and handle, so attaching again — after a restart, with a new program — replaces
the filter in one netlink request: there is no moment without a program. Programs stay attached
and maps pinned when the daemon stops; `flush` removes both.

Everything here blocks (compilation takes seconds): the daemon calls it in worker threads.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from appliance.structlog import get_logger

from .layout import LAYOUT_VERSION, MAPS, Settings
from .maps import Maps, read_settings
from .source import INGRESS_FUNCTION, LB_SOURCE, program_text

__all__ = [
    "EGRESS_PARENT",
    "INGRESS_PARENT",
    "PIN_ROOT",
    "TC_HANDLE",
    "TC_PRIO",
    "Dataplane",
    "FlushResult",
    "LoadResult",
    "attached_programs",
    "detach_all",
    "flush",
    "interface_addresses",
    "interface_indexes",
    "link_indexes",
    "pin_dir_for",
    "remove_pins",
]

log = get_logger("dataplane")

#: Pins live in <PIN_ROOT>/<node>/; TRIOLB_BPF_ROOT moves the root (the lab gives each lab its own).
PIN_ROOT = Path(os.environ.get("TRIOLB_BPF_ROOT", "/sys/fs/bpf/triolb"))
#: clsact's ingress and egress hooks (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS / _EGRESS)).
INGRESS_PARENT = 0xFFFFFFF2
EGRESS_PARENT = 0xFFFFFFF3
HOOKS: dict[str, int] = {"ingress": INGRESS_PARENT, "egress": EGRESS_PARENT}
#: Our filter's fixed identity on each hook: re-attaching replaces it atomically.
TC_PRIO = 1
TC_HANDLE = 0x7462
FILTER_NAME = f"triolb:{INGRESS_FUNCTION}"

_IFA_F_SECONDARY = 0x01
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def pin_dir_for(node: str, pin_root: Path = PIN_ROOT) -> Path:
    """The pin directory of ``node`` (a plain name: no path separators)."""
    if not _NODE_NAME.match(node) or ".." in node:
        raise ValueError(f"node name {node!r} cannot name a pin directory")
    return pin_root / node


@attrs.frozen
class LoadResult:
    node: str
    pin_dir: Path
    #: pinned maps of this layout were found and are in use (state from before survives)
    adopted: bool
    #: pins of another layout version (or without settings) were removed before loading
    layout_reset: bool
    #: the version the pinned settings held (None: nothing was pinned)
    previous_version: int | None


def remove_pins(pin_dir: Path) -> list[str]:
    """Unlink every pin in ``pin_dir`` and the directory itself; returns the names removed."""
    removed: list[str] = []
    if not pin_dir.is_dir():
        return removed
    for entry in sorted(pin_dir.iterdir()):
        entry.unlink()
        removed.append(entry.name)
    pin_dir.rmdir()
    return removed


def _prepare_pins(node: str, pin_dir: Path) -> tuple[bool, bool, int | None]:
    """Check pins left by an earlier daemon: (adopted, layout_reset, previous_version)."""
    pin_dir.mkdir(parents=True, exist_ok=True)
    present = sorted(p.name for p in pin_dir.iterdir())
    if not present:
        return False, False, None
    settings = read_settings(pin_dir)
    previous = int(settings.version) if settings is not None else None
    if previous == LAYOUT_VERSION:
        return True, False, previous
    log.warning(
        "dataplane_layout_reset",
        node=node,
        pinned_version=previous,
        layout_version=LAYOUT_VERSION,
        pins=present,
    )
    remove_pins(pin_dir)
    pin_dir.mkdir(parents=True, exist_ok=True)
    return False, True, previous


class Dataplane:
    """A compiled dataplane program with its pinned maps (see `load`)."""

    def __init__(self, bpf: Any, program_fd: int, result: LoadResult, maps: Maps) -> None:
        self.bpf = bpf
        self.program_fd = program_fd
        self.result = result
        self.maps = maps

    @classmethod
    def load(
        cls,
        node_name: str,
        node_id: int,
        *,
        source: Path = LB_SOURCE,
        pin_root: Path = PIN_ROOT,
    ) -> Dataplane:
        """Compile ``source`` with the node's maps pinned (adopting or resetting earlier pins)
        and write the settings {layout version, node id}. Blocking."""
        from bcc import BPF

        pin_dir = pin_dir_for(node_name, pin_root)
        adopted, reset, previous = _prepare_pins(node_name, pin_dir)
        bpf = BPF(text=program_text(str(pin_dir), source).encode())
        try:
            function = bpf.load_func(INGRESS_FUNCTION.encode(), BPF.SCHED_CLS)
            fds = {spec.name: int(bpf[spec.name.encode()].map_fd) for spec in MAPS if spec.pinned}
        except BaseException:
            bpf.cleanup()
            raise
        maps = Maps.from_fds(fds)
        pinned = maps.settings.lookup(ctypes.c_uint32(0))
        if adopted and pinned is not None and pinned.node_id not in (0, node_id):
            log.warning("dataplane_node_id_changed", old=int(pinned.node_id), new=node_id)
        maps.settings.update(ctypes.c_uint32(0), Settings(version=LAYOUT_VERSION, node_id=node_id))
        result = LoadResult(node_name, pin_dir, adopted, reset, previous)
        log.info(
            "dataplane_loaded",
            node=node_name,
            node_id=node_id,
            pin_dir=str(pin_dir),
            adopted=adopted,
            layout_reset=reset,
        )
        return cls(bpf, int(function.fd), result, maps)

    def attach(
        self, ifnames: Iterable[str], egress: bool = False, *, netns: str | None = None
    ) -> list[str]:
        """Attach (or atomically replace) the program on each interface's ingress, and on
        egress when ``egress`` (else our egress filter is removed). Returns the interfaces
        attached; missing interfaces are skipped."""
        done: list[str] = []
        with _iproute(netns) as ipr:
            for ifname in ifnames:
                index = _link_index(ipr, ifname)
                if index is None:
                    continue
                _ensure_clsact(ipr, index)
                _replace_filter(ipr, index, INGRESS_PARENT, self.program_fd)
                if egress:
                    _replace_filter(ipr, index, EGRESS_PARENT, self.program_fd)
                else:
                    _delete_filter(ipr, index, EGRESS_PARENT)
                done.append(ifname)
        return done

    def detach(self, ifnames: Iterable[str], *, netns: str | None = None) -> None:
        """Remove our filters (ingress and egress) from the interfaces; others stay."""
        with _iproute(netns) as ipr:
            for ifname in ifnames:
                index = _link_index(ipr, ifname)
                if index is None:
                    continue
                for parent in HOOKS.values():
                    _delete_filter(ipr, index, parent)

    def attached(self, *, netns: str | None = None) -> dict[str, list[str]]:
        return attached_programs(netns=netns)

    def open_events(self, callback: Callable[[Any, int, int], int | None]) -> None:
        """Register the raw ring-buffer callback (ctx, data pointer, size) on ``events``."""
        self.bpf[b"events"].open_ring_buffer(callback)

    def poll_events(self, timeout_ms: int) -> None:
        """Deliver pending events to the callback; waits at most ``timeout_ms``."""
        self.bpf.ring_buffer_poll(timeout_ms)

    def close(self) -> None:
        """Release the program and map fds (attached programs and pins stay)."""
        self.bpf.cleanup()


@contextmanager
def _iproute(netns: str | None) -> Iterator[Any]:
    from pyroute2 import IPRoute

    ipr = IPRoute(netns=netns) if netns is not None else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _link_index(ipr: Any, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return int(found[0]) if found else None


def _netlink_errno(exc: Exception) -> int | None:
    code = getattr(exc, "code", None)
    return int(code) if isinstance(code, int) else None


def _ensure_clsact(ipr: Any, index: int) -> None:
    kinds = {q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=index)}
    if "clsact" in kinds:
        return
    try:
        ipr.tc("add", "clsact", index)
    except Exception as exc:
        if _netlink_errno(exc) != errno.EEXIST:
            raise


def _replace_filter(ipr: Any, index: int, parent: int, fd: int) -> None:
    ipr.tc(
        "replace-filter",
        "bpf",
        index,
        TC_HANDLE,
        fd=fd,
        name=FILTER_NAME,
        parent=parent,
        prio=TC_PRIO,
        direct_action=True,
    )


def _delete_filter(ipr: Any, index: int, parent: int) -> bool:
    if not _has_filter(ipr, index, parent):
        return False
    try:
        ipr.tc("del-filter", "bpf", index, TC_HANDLE, parent=parent, prio=TC_PRIO)
    except Exception as exc:
        if _netlink_errno(exc) not in (errno.ENOENT, errno.EINVAL):
            raise
        return False
    return True


def _ours(msg: Any) -> bool:
    return bool(
        msg.get_attr("TCA_KIND") == "bpf"
        and msg["handle"] == TC_HANDLE
        and (msg["info"] >> 16) == TC_PRIO
    )


def _has_filter(ipr: Any, index: int, parent: int) -> bool:
    try:
        return any(_ours(m) for m in ipr.get_filters(index=index, parent=parent))
    except Exception as exc:
        if _netlink_errno(exc) in (errno.EINVAL, errno.ENOENT):  # no clsact qdisc
            return False
        raise


def attached_programs(*, netns: str | None = None) -> dict[str, list[str]]:
    """Interfaces carrying our filter: name -> hooks ("ingress", "egress")."""
    out: dict[str, list[str]] = {}
    with _iproute(netns) as ipr:
        for link in ipr.get_links():
            ifname = str(link.get_attr("IFLA_IFNAME"))
            hooks = [h for h, parent in HOOKS.items() if _has_filter(ipr, link["index"], parent)]
            if hooks:
                out[ifname] = hooks
    return out


def detach_all(*, netns: str | None = None) -> list[str]:
    """Remove our filters from every interface of the namespace; returns "ifname/hook"s."""
    removed: list[str] = []
    with _iproute(netns) as ipr:
        for link in ipr.get_links():
            ifname = str(link.get_attr("IFLA_IFNAME"))
            for hook, parent in HOOKS.items():
                if _delete_filter(ipr, link["index"], parent):
                    removed.append(f"{ifname}/{hook}")
    return removed


@attrs.frozen
class FlushResult:
    detached: tuple[str, ...]  # "ifname/hook"
    pins_removed: tuple[str, ...]


def flush(
    node: str, *, pin_root: Path = PIN_ROOT, netns: str | None = None, filters: bool = True
) -> FlushResult:
    """Remove the node's dataplane: our TC filters in the namespace (``filters``) and the
    node's pins. Forwarding by the program stops; the next load starts from empty maps."""
    detached = detach_all(netns=netns) if filters else []
    removed = remove_pins(pin_dir_for(node, pin_root))
    log.info("dataplane_flushed", node=node, detached=detached, pins_removed=removed)
    return FlushResult(tuple(detached), tuple(removed))


def link_indexes(*, netns: str | None = None) -> dict[str, int]:
    """Every interface of the namespace: name -> ifindex."""
    with _iproute(netns) as ipr:
        return {str(link.get_attr("IFLA_IFNAME")): int(link["index"]) for link in ipr.get_links()}


def interface_indexes(ifnames: Iterable[str], *, netns: str | None = None) -> dict[str, int]:
    """Interface name -> ifindex for those that exist."""
    out: dict[str, int] = {}
    with _iproute(netns) as ipr:
        for ifname in ifnames:
            index = _link_index(ipr, ifname)
            if index is not None:
                out[ifname] = index
    return out


def interface_addresses(
    ifnames: Iterable[str],
    exclude: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
    *,
    netns: str | None = None,
) -> dict[int, ipaddress.IPv4Address]:
    """ifindex -> the interface's primary IPv4 address (not a secondary, not one of
    ``exclude``: the VIPs), for the named interfaces that have one (one-arm SNAT source)."""
    skip = set(exclude)
    out: dict[int, ipaddress.IPv4Address] = {}
    with _iproute(netns) as ipr:
        for ifname in ifnames:
            index = _link_index(ipr, ifname)
            if index is None:
                continue
            for msg in ipr.get_addr(family=2, index=index):
                flags = msg.get_attr("IFA_FLAGS")
                flags = int(msg["flags"] if flags is None else flags)
                address = ipaddress.IPv4Address(msg.get_attr("IFA_ADDRESS"))
                if flags & _IFA_F_SECONDARY or address in skip:
                    continue
                out[index] = address
                break
    return out
