"""The peer: kernel conntrack replicated by conntrackd (FTFW), the same lag measurement.

After triolb's daemons are stopped and their programs flushed, in the same lab:

- node1 and node2 get the same nftables table ``ctbench``: DNAT of VIP:9000/tcp to ep1..ep3
  (``numgen inc mod 3``) at prerouting and SNAT to the floating source 192.168.80.240 at
  postrouting (full NAT, as triolb's ``echo`` service); node1 holds 192.168.80.240; the router
  routes the VIP statically to node1 (nothing else moves: this measures replication only);
- conntrackd (Debian package) runs in both nodes: ``Mode FTFW`` with ``DisableExternalCache
  On`` (received entries go straight into the kernel table, as triolb writes its map), UDP
  unicast over the lab LAN (port 3780), TCP only, the usual state filter (ESTABLISHED and the
  closing states: an entry is sent once the connection is established, as triolb does);
- ``conntrack -E -e NEW -o timestamp`` in node2 timestamps each entry conntrackd injects there.

The client opens the same connections (:mod:`ctsync_bench.opener`); the lag of one is the
timestamp of its NEW event on node2 minus its ``connect()`` return time, both wall clock (the
host's, shared by all namespaces; the opener writes both clocks).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle

from . import lag
from .nodes import ADDRESSES, CLIENT, ECHO_PORT, NODES, SOURCE, VIP, log

SYNC_PORT = 3780
ENDPOINTS = ("192.168.80.101", "192.168.80.102", "192.168.80.103")
EVENTS = "ct-events-node2"
EVENT_LINE = re.compile(
    r"^\[(\d+\.\d+)\]\s+\[NEW\]\s+tcp\s.*?src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)"
)
MISSING_AFTER_S = 10.0


def nft_rules() -> str:
    targets = ", ".join(f"{i} : {address}" for i, address in enumerate(ENDPOINTS))
    return f"""table ip ctbench {{
  chain pre {{
    type nat hook prerouting priority dstnat;
    ip daddr {VIP} tcp dport {ECHO_PORT} dnat to numgen inc mod {len(ENDPOINTS)} map {{ {targets} }}
  }}
  chain post {{
    type nat hook postrouting priority srcnat;
    ip saddr 203.0.113.0/24 ip daddr 192.168.80.0/24 tcp dport {ECHO_PORT} snat to {SOURCE}
  }}
}}
"""


def conntrackd_config(node: str, workdir: Path) -> Path:
    other = ADDRESSES[NODES[1] if node == NODES[0] else NODES[0]]
    text = f"""Sync {{
    Mode FTFW {{
        DisableExternalCache On
    }}
    UDP {{
        IPv4_address {ADDRESSES[node]}
        IPv4_Destination_Address {other}
        Port {SYNC_PORT}
        Interface eth0
        SndSocketBuffer 1249280
        RcvSocketBuffer 1249280
        Checksum on
    }}
}}
General {{
    HashSize 32768
    HashLimit 131072
    LogFile {workdir}/conntrackd-{node}.log
    Syslog off
    LockFile {workdir}/conntrackd-{node}.lock
    UNIX {{
        Path {workdir}/conntrackd-{node}.ctl
    }}
    NetlinkBufferSize 2097152
    NetlinkBufferSizeMaxGrowth 8388608
    Filter From Userspace {{
        Protocol Accept {{
            TCP
        }}
        Address Ignore {{
            IPv4_address 127.0.0.1
            IPv4_address {ADDRESSES["node1"]}
            IPv4_address {ADDRESSES["node2"]}
        }}
        State Accept {{
            ESTABLISHED CLOSED TIME_WAIT CLOSE_WAIT for TCP
        }}
    }}
}}
"""
    path = workdir / f"conntrackd-{node}.conf"
    path.write_text(text)
    return path


def _sh(lab: LabHandle, host: str, *argv: str, check: bool = True, stdin: str | None = None) -> str:
    result = lab.exec(host, list(argv), timeout=15, input=stdin)
    if check and result.returncode != 0:
        raise RuntimeError(f"{host}: {' '.join(argv)}: {result.stderr.strip() or result.stdout}")
    return result.stdout


def setup(lab: LabHandle, workdir: Path) -> dict[str, Any]:
    """nftables, addresses, the router's route, conntrackd in both nodes, node2's event log."""
    for node in NODES:
        _sh(lab, node, "nft", "-f", "-", stdin=nft_rules())
        for address in (SOURCE, VIP):
            _sh(lab, node, "ip", "addr", "del", f"{address}/32", "dev", "eth0", check=False)
        _sh(lab, node, "conntrack", "-F", check=False)
    _sh(lab, "node1", "ip", "addr", "replace", f"{SOURCE}/32", "dev", "eth0")
    _sh(lab, "router", "ip", "route", "replace", f"{VIP}/32", "via", ADDRESSES["node1"])
    for node in NODES:
        config = conntrackd_config(node, workdir)
        lab.spawn(node, f"conntrackd-{node}", ["conntrackd", "-C", str(config)])
    time.sleep(1.0)
    for node in NODES:
        if not lab.alive(f"conntrackd-{node}"):
            log_file = workdir / f"conntrackd-{node}.log"
            tail = log_file.read_text(errors="replace")[-800:] if log_file.exists() else ""
            raise RuntimeError(
                f"conntrackd exited in {node}: {lab.log_tail(f'conntrackd-{node}', 10)} {tail}"
            )
    argv = ["stdbuf", "-oL", "conntrack", "-E", "-e", "NEW", "-p", "tcp", "-o", "timestamp"]
    lab.spawn("node2", EVENTS, argv)
    time.sleep(0.5)
    version = subprocess.run(
        ["conntrackd", "-v"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.splitlines()
    return {"version": version[0] if version else None}


def teardown(lab: LabHandle) -> None:
    for name in (EVENTS, "conntrackd-node1", "conntrackd-node2"):
        if any(record.name == name for record in lab.processes):
            lab.stop(name, timeout=5.0)
    for node in NODES:
        _sh(lab, node, "nft", "delete", "table", "ip", "ctbench", check=False)


def node2_events(lab: LabHandle, offset: int) -> tuple[dict[int, float], int]:
    """client port -> wall time of its NEW event in node2, from the event log after ``offset``."""
    path = lab.log_path(EVENTS)
    with open(path, errors="replace") as handle:
        handle.seek(offset)
        chunk = handle.read()
    end = offset + len(chunk.encode())
    if not chunk.endswith("\n"):  # keep a partial last line for the next read
        cut = chunk.rfind("\n") + 1
        end = offset + len(chunk[:cut].encode())
        chunk = chunk[:cut]
    seen: dict[int, float] = {}
    for line in chunk.splitlines():
        match = EVENT_LINE.match(line.strip())
        if match and match[2] == CLIENT and match[3] == VIP and int(match[5]) == ECHO_PORT:
            seen.setdefault(int(match[4]), float(match[1]))
    return seen, end


def measure(
    lab: LabHandle, workdir: Path, *, count: int, rate: float, hold: float
) -> dict[str, Any]:
    name = "opener-conntrackd"
    out = workdir / f"{name}.txt"
    max_s = count / rate + hold + 30
    lab.spawn("client", name, lag.opener_argv(out, count, rate, hold, max_s))
    follow = lag.OpenerFile(out)
    connected: dict[int, int] = {}  # client port -> wall ns
    seen: dict[int, float] = {}
    offset = 0
    started = time.monotonic()
    deadline = started + max_s + MISSING_AFTER_S + 5
    try:
        while time.monotonic() < deadline:
            for sport, _mono, wall in follow.new_connections():
                connected[sport] = wall
            new, offset = node2_events(lab, offset)
            for sport, at in new.items():
                seen.setdefault(sport, at)
            if follow.done is not None:
                waiting = [p for p in connected if p not in seen]
                if not waiting or time.monotonic() > started + max_s + MISSING_AFTER_S:
                    break
            time.sleep(0.01)
    finally:
        if any(record.name == name for record in lab.processes):
            lab.stop(name, timeout=5.0)
    lags = [(seen[p] - wall / 1e9) * 1000 for p, wall in connected.items() if p in seen]
    opened, failed = follow.done if follow.done is not None else (len(connected), -1)
    log(f"conntrackd: {len(lags)} of {len(connected)} seen on node2")
    return {
        "lag_ms": lag.summary(lags),
        "lags_ms": [round(v, 3) for v in lags],
        "connections": count,
        "opened": opened,
        "connect_failures": failed,
        "failure_samples": follow.failures[:5],
        "seen_on_peer": len(lags),
        "missing_on_peer": len(connected) - len(lags),
        "rate_per_s": rate,
        "hold_s": hold,
        "wall_s": round(time.monotonic() - started, 1),
    }


def run(lab: LabHandle, workdir: Path, *, count: int, rate: float, hold: float) -> dict[str, Any]:
    """Set up, measure, tear down; ``{"error": ...}`` when it cannot be made to work."""
    for tool in ("conntrackd", "conntrack", "nft", "stdbuf"):
        if shutil.which(tool) is None:
            return {"error": f"{tool} is not installed (Debian: conntrackd, conntrack, nftables)"}
    try:
        info = setup(lab, workdir)
        if not _connects(lab):
            raise RuntimeError("the client cannot reach VIP:9000 through node1's nftables")
        time.sleep(1.0)
        log(f"conntrackd: {count} connections at {rate}/s")
        result = measure(lab, workdir, count=count, rate=rate, hold=hold)
        result.update(info)
        result["mode"] = "FTFW, DisableExternalCache On, UDP unicast, TCP ESTABLISHED+"
        result["node2_kernel_entries"] = _count(lab, "node2")
        return result
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
        log(f"conntrackd failed: {exc}")
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        teardown(lab)


def _connects(lab: LabHandle) -> bool:
    from .nodes import client_connects

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client_connects(lab):
            return True
        time.sleep(0.2)
    return False


def _count(lab: LabHandle, node: str) -> int | None:
    result = lab.exec(node, ["conntrack", "-C"], timeout=10)
    try:
        return int(result.stdout.strip())
    except ValueError:
        return None
