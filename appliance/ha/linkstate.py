"""An interface's operational state, read with one ioctl (SIOCGIFFLAGS) in this network
namespace: microseconds, no netlink dump, no worker thread, so interface tracks can be
checked often and cheaply. ``IFF_RUNNING`` is the kernel's RFC 2863 "operationally up"
(``IF_OPER_UP``): a link administratively down, without carrier, or dormant is not running.
"""

from __future__ import annotations

import fcntl
import socket
import struct
from collections.abc import Iterable

__all__ = ["DOWN", "UP", "oper_states"]

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40
_IFREQ = struct.Struct("16sH14x")  # struct ifreq: name, then ifr_flags in the union
UP = "up"
DOWN = "down"


def _flags(sock: socket.socket, ifname: str) -> int | None:
    try:
        reply = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, _IFREQ.pack(ifname.encode(), 0))
    except OSError:
        return None  # no such interface
    flags: int = _IFREQ.unpack(reply)[1]
    return flags


def oper_states(ifnames: Iterable[str]) -> dict[str, str]:
    """``up`` or ``down`` for each existing interface of ``ifnames`` (missing ones left out,
    which tracking counts as down)."""
    out: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in ifnames:
            flags = _flags(sock, name)
            if flags is not None:
                out[name] = UP if flags & IFF_UP and flags & IFF_RUNNING else DOWN
    return out
