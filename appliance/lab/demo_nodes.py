"""The demo's two appliance nodes: their configs, daemons, roles and BIRD's view of the VIP.

The nodes run the shipped scenario-4 examples (``scenario4-ctsync-node{1,2}.yaml``) unchanged
except for the secret files (HA key, sync key, web token), whose paths are relative to the
example: the copies in the demo's work directory name them absolutely. Roles are read from each
node's web API through the dashboard forwarders (loopback of the root namespace), which is
cheap enough to poll every second.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle
from appliance.lab.examples import copy_example, daemon_argv
from appliance.lab.scenarios import NODE_ADDRESSES

NODES = ("node1", "node2")
CONFIG_STEM = "scenario4-ctsync"
VIP = "198.51.100.10"
VIP_PREFIX = f"{VIP}/32"
WEB_PORT = 80
ECHO_PORT = 9000
#: compiling lb.c with bcc takes seconds, two nodes at once on a busy 2-core machine longer
DAEMON_READY_S = 180.0
READY_S = 60.0
API_TIMEOUT_S = 2.0


class DemoStopped(Exception):
    """Ctrl-C (or the time bound) arrived while the demo was waiting for something."""


def daemon_name(node: str) -> str:
    return f"{node}-daemon"


def write_config(config_dir: Path, workdir: Path, node: str) -> Path:
    """The node's scenario-4 config, copied to ``workdir`` with absolute secret paths."""
    return copy_example(CONFIG_STEM, node, workdir, config_dir=config_dir)


def spawn_daemon(handle: LabHandle, node: str, config: Path) -> int:
    """``triolb run`` in ``node``'s namespace with the host's mounts (pinned maps on bpffs)."""
    return handle.spawn(node, daemon_name(node), daemon_argv(config), share_mounts=True)


def wait_until(
    stop: Callable[[], bool],
    probe: Callable[[], object],
    what: str,
    timeout: float,
    interval: float = 0.5,
) -> None:
    """Poll ``probe`` until truthy; :class:`DemoStopped` when ``stop()`` turns true,
    :class:`TimeoutError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if stop():
            raise DemoStopped(what)
        if probe():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def daemon_logged(handle: LabHandle, node: str, event: str) -> bool:
    """The daemon's JSON log holds ``event``; RuntimeError (with its log) if it died."""
    name = daemon_name(node)
    if f'"{event}"' in handle.log_path(name).read_text(errors="replace"):
        return True
    if not handle.alive(name):
        raise RuntimeError(f"{name} exited:\n{handle.log_tail(name, 20)}")
    return False


def api_get(port: int, path: str) -> Any:
    """GET ``http://127.0.0.1:<port><path>`` (a dashboard forwarder) as JSON; None on error."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=API_TIMEOUT_S) as response:
            return json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def role_of(port: int) -> str:
    """The role of the node's one HA group (``active``, ``backup``, ``fault``…), or ``down``
    when its API does not answer."""
    body = api_get(port, "/api/v1/ha")
    if not isinstance(body, dict) or not body.get("groups"):
        return "down"
    return str(body["groups"][0]["role"])


def roles(ports: dict[str, int]) -> dict[str, str]:
    return {node: role_of(port) for node, port in ports.items()}


def active_node(ports: dict[str, int]) -> str | None:
    found = [node for node, role in roles(ports).items() if role == "active"]
    return found[0] if len(found) == 1 else None


def bird_best_via(handle: LabHandle) -> str | None:
    """The node BIRD's best route for the VIP goes through, None without one."""
    try:
        text = handle.birdc(f"show route {VIP_PREFIX}")
    except RuntimeError:  # "Network not found": birdc exits non-zero
        return None
    best = False
    for line in text.splitlines():
        if "unicast" in line:
            best = " * " in line
        elif best and line.strip().startswith("via "):
            hop = line.split()[1]
            return next((n for n, ip in NODE_ADDRESSES.items() if ip == hop), hop)
    return None


def set_links(handle: LabHandle, node: str, state: str) -> None:
    """Every link of ``node`` ``up`` or ``down`` (``ip link set``); RuntimeError on failure."""
    for link in handle.topology.links_of(node):
        result = handle.exec(node, ["ip", "link", "set", link.ifname, state], timeout=10)
        if result.returncode != 0:
            raise RuntimeError(f"{node}: ip link set {link.ifname} {state}: {result.stderr}")
