"""The scenario-4 daemons: derived configs, start and stop, JSON log events, pinned maps.

The configs are ``examples/scenario4-ctsync-node{1,2}.yaml`` with the key files made absolute
and one service added: ``echo-udp`` (198.51.100.10:9000/udp -> ep1..ep3:9000, full NAT, same
floating source, no probe). The volume test needs it: one full-NAT source address gives a node
``port_count`` (16,128) source ports per endpoint, so the example's two TCP services (six
endpoint/port pairs) hold at most 96,768 connections; three more pairs make room for 100,000.

The daemons run with the host's mounts (``share_mounts``): their pins are then in the host's
bpffs under ``/sys/fs/bpf/triolb-lab/<prefix>/<node>``, where the bench opens them (the lag
probe only reads; the volume test writes node1's table).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from appliance.config import load_config
from appliance.lab import procs
from appliance.lab.api import LabHandle
from bpf.loader import flush, pin_dir_for
from bpf.maps import Maps

REPO_DIR = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_DIR / "examples"
NODES = ("node1", "node2")
ADDRESSES = {"node1": "192.168.80.252", "node2": "192.168.80.253"}
VIP = "198.51.100.10"
SOURCE = "192.168.80.240"
ECHO_PORT = 9000
CLIENT = "203.0.113.10"
ROUTER_CLUSTER = "192.168.80.254"
POLL_S = 0.05
READY_TIMEOUT_S = 120.0

Event = dict[str, Any]


def log(message: str) -> None:
    print(f"[ctsync] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def daemon_name(node: str) -> str:
    return f"triolb-{node}"


def derive_config(node: str, workdir: Path) -> Path:
    """The example config of ``node`` with absolute key paths and the ``echo-udp`` service."""
    example = EXAMPLES / f"scenario4-ctsync-{node}.yaml"
    doc: dict[str, Any] = yaml.safe_load(example.read_text())
    base = example.parent

    def absolute(value: str) -> str:
        path = Path(value)
        return str(path if path.is_absolute() else (base / path).resolve())

    for group in doc.get("ha", {}).get("groups", []):
        if "auth_key_file" in group:
            group["auth_key_file"] = absolute(group["auth_key_file"])
    doc["sync"]["key_file"] = absolute(doc["sync"]["key_file"])
    doc["web"]["token_file"] = absolute(doc["web"]["token_file"])
    doc["services"].append(
        {
            "name": "echo-udp",
            "vip": VIP,
            "port": ECHO_PORT,
            "protocol": "udp",
            "mode": "fullnat",
            "source": SOURCE,
            "endpoints": [{"address": f"192.168.80.{n}"} for n in (101, 102, 103)],
        }
    )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"ctsync-{node}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_config(path)  # a bad config fails here, not in the daemon's log
    return path


def start_daemon(lab: LabHandle, node: str, config: Path) -> None:
    argv = [sys.executable, "-m", "appliance", "run", "--config", str(config)]
    lab.spawn(node, daemon_name(node), [*argv, "--log-format", "json"], share_mounts=True)


def stop_daemon(lab: LabHandle, node: str) -> None:
    name = daemon_name(node)
    if any(record.name == name for record in lab.processes):
        lab.stop(name, timeout=10.0)


def pin_dir(lab: LabHandle, node: str) -> Path:
    return pin_dir_for(node, procs.bpf_root(lab.ns(node)))


def flush_dataplane(lab: LabHandle, node: str) -> None:
    """Detach the node's programs (they outlive the daemon by design) and remove its pins: the
    product's own ``dataplane flush``, run for the node's namespace."""
    flush(node, pin_root=procs.bpf_root(lab.ns(node)), netns=lab.ns(node))


def open_maps(lab: LabHandle, node: str, timeout_s: float) -> Maps:
    """The node's pinned maps, once they exist (the daemon pins them after its compile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return Maps.open_pinned(pin_dir(lab, node))
        except OSError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.005)


# --- log events ----------------------------------------------------------------------------


def events(lab: LabHandle, node: str) -> list[Event]:
    """The JSON log lines of the node's daemon so far (all of its runs in this lab)."""
    try:
        text = (lab.log_dir / f"{daemon_name(node)}.log").read_text(errors="replace")
    except FileNotFoundError:
        return []
    out: list[Event] = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def ts(event: Event) -> float:
    """The event's wall-clock time (the JSON log's ``ts``, millisecond resolution)."""
    stamp = datetime.strptime(str(event["ts"]), "%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp.replace(tzinfo=UTC).timestamp()


def wait_event(
    lab: LabHandle,
    node: str,
    name: str,
    *,
    after: int = 0,
    where: Callable[[Event], bool] = lambda _event: True,
    timeout_s: float = READY_TIMEOUT_S,
) -> Event:
    """The first event ``name`` (index >= ``after``) matching ``where``; bounded wait."""
    deadline = time.monotonic() + timeout_s
    while True:
        for event in events(lab, node)[after:]:
            if event.get("event") == name and where(event):
                return event
        if not lab.alive(daemon_name(node)):
            tail = lab.log_tail(daemon_name(node), 15)
            raise RuntimeError(f"{node}'s daemon exited waiting for {name}:\n{tail}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{node}: no {name!r} within {timeout_s:.0f} s")
        time.sleep(POLL_S)


def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float) -> float:
    """Poll ``predicate`` until true; seconds waited. Bounded."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


# --- the path through node1 ---------------------------------------------------------------


def client_connects(lab: LabHandle, port: int = ECHO_PORT) -> bool:
    code = (
        "import socket,sys\n"
        f"s=socket.create_connection(('{VIP}',{port}),timeout=1)\n"
        "s.sendall(b'x\\n'); s.settimeout(1); sys.exit(0 if s.recv(8) else 1)\n"
    )
    try:
        return lab.exec("client", [sys.executable, "-c", code], timeout=5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def router_prefers(lab: LabHandle, node: str) -> bool:
    """BIRD's best route to the VIP goes via ``node``."""
    try:
        out = lab.birdc(f"show route for {VIP}")
    except (RuntimeError, OSError, subprocess.SubprocessError):
        return False
    match = re.search(r"\bvia (\S+)", out)  # the first route listed is the best
    return match is not None and match[1] == ADDRESSES[node]


def show_json(lab: LabHandle, node: str, *what: str) -> Any:
    """``triolb show --json ...`` in the node's namespace (None when it fails)."""
    argv = [sys.executable, "-m", "appliance", "show", "--json", *what]
    try:
        result = lab.exec(node, argv, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        return None
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None
