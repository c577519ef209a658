"""Boot duties of an appliance node, run once by the daemon before its services start.

- sysctls the scenarios need (forwarding, ARP behaviour for VIPs, no rp_filter or redirects on
  the data interfaces, non-local bind for VIPs not yet owned);
- bpffs mounted at /sys/fs/bpf (the dataplane pins its maps there);
- the interfaces the config names exist (bounded wait).

Everything here acts on the network namespace the daemon runs in. The functions are blocking
and are called through `trio.to_thread.run_sync`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from .config.model import Interfaces

PROC_SYS = Path("/proc/sys")
#: Runtime state that lasts until reboot (tmpfs); the lab points it into its own directory.
RUN_DIR = Path(os.environ.get("TRIOLB_RUN_DIR", "/run/triolb"))
#: State that survives a restart and a reboot (the VIP pool allocation); the lab points it
#: into its own directory.
STATE_DIR = Path(os.environ.get("TRIOLB_STATE_DIR", "/var/lib/triolb"))
BPFFS = Path("/sys/fs/bpf")

GLOBAL_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
    ("net/ipv4/ip_nonlocal_bind", "1"),
    ("net/ipv6/ip_nonlocal_bind", "1"),
    # answer ARP only for addresses of the receiving interface; announce from the best source
    ("net/ipv4/conf/all/arp_ignore", "1"),
    ("net/ipv4/conf/all/arp_announce", "2"),
    # a one-arm node forwards out of the interface it received on: no redirects, no rp_filter
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/default/send_redirects", "0"),
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
)

PER_INTERFACE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("rp_filter", "0"),
    ("send_redirects", "0"),
)


@attrs.frozen
class SysctlChange:
    name: str
    old: str
    new: str


def write_sysctls(
    settings: Iterable[tuple[str, str]], proc_sys: Path = PROC_SYS
) -> list[SysctlChange]:
    """Set each sysctl that differs; return what changed. Missing ones are skipped."""
    changes = []
    for name, value in settings:
        path = proc_sys / name
        try:
            old = path.read_text().strip()
        except FileNotFoundError:
            continue
        if old != value:
            path.write_text(value + "\n")
            changes.append(SysctlChange(name.replace("/", "."), old, value))
    return changes


def selected_interfaces(names: Iterable[str], interfaces: Interfaces) -> list[str]:
    """The interfaces the config's include/exclude regexes select (the seed's blacklist)."""
    return [name for name in names if interfaces.selects(name)]


def interface_sysctls(interfaces: Iterable[str]) -> list[tuple[str, str]]:
    return [
        (f"net/ipv4/conf/{ifname}/{key}", value)
        for ifname in interfaces
        for key, value in PER_INTERFACE_SYSCTLS
    ]


def list_interfaces() -> dict[str, str]:
    """Interface name -> operational state, in this network namespace."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {
            link.get_attr("IFLA_IFNAME"): str(link.get_attr("IFLA_OPERSTATE"))
            for link in ipr.get_links()
        }


def bpffs_mounted(mounts: Path = Path("/proc/self/mounts"), target: Path = BPFFS) -> bool:
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == str(target) and fields[2] == "bpf":
            return True
    return False


def mount_bpffs(target: Path = BPFFS) -> bool:
    """Mount bpffs at `target` if it is not mounted; returns True when it mounted it."""
    if bpffs_mounted(target=target):
        return False
    target.mkdir(parents=True, exist_ok=True)
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.mount(b"bpffs", str(target).encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount bpffs on {target}: {os.strerror(err)}")
    return True


def note_restart(node: str, service: str, run_dir: Path = RUN_DIR) -> bool:
    """Whether `service` already ran on this node since boot (/run is a tmpfs); notes it did.

    BGP sets the graceful-restart Restart State bit only for a real restart."""
    marker = run_dir / node / f"{service}.started"
    restarted = marker.exists()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    return restarted
