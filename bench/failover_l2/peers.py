"""The two HA implementations compared: triolb's election and keepalived (VRRPv3).

Each one is started on node1 (priority 150) and node2 (priority 100) of the scenario-1 lab with
the same advert interval, group/VRID 1, interface eth0, VIP 192.168.80.200/32 and unicast
adverts to the other node (as in examples/scenario1-l2-node*.yaml).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import yaml

from appliance.lab.api import LabHandle

REPO_DIR = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_DIR / "examples"
NODES = ("node1", "node2")
ADDRESSES = {"node1": "192.168.80.252", "node2": "192.168.80.253"}
PRIORITIES = {"node1": 150, "node2": 100}
VIP = "192.168.80.200"
GROUP_ID = 1
READY_TIMEOUT_S = 20.0


class HaUnavailable(RuntimeError):
    """The implementation cannot run on this host (e.g. the package is missing)."""


class HaImplementation(Protocol):
    name: str

    def prepare(self) -> dict[str, Any]:
        """Check it can run; return facts for the JSON (version, settings)."""
        ...

    def start(self, lab: LabHandle, workdir: Path) -> None:
        """Start it on both nodes; return once both daemons are up."""
        ...

    def stop(self, lab: LabHandle) -> None:
        """Stop it on both nodes (bounded)."""
        ...


def _other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def _process_name(impl: str, node: str) -> str:
    return f"{impl}-{node}"


def _stop_all(lab: LabHandle, impl: str) -> None:
    for node in NODES:
        name = _process_name(impl, node)
        if any(p.name == name for p in lab.processes):
            lab.stop(name, timeout=5.0)


class Triolb:
    """``python -m appliance run`` with the scenario-1 example configs, advert interval set."""

    name = "triolb"

    def __init__(self, advert_ms: int) -> None:
        self.advert_ms = advert_ms

    def prepare(self) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "appliance", "version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return {"version": out.stdout.strip() or None, "garp": "as built (appliance/ha)"}

    def config(self, node: str, workdir: Path) -> Path:
        """The example config of ``node`` with this advert interval and an absolute key path."""
        data = yaml.safe_load((EXAMPLES / f"scenario1-l2-{node}.yaml").read_text())
        (group,) = data["ha"]["groups"]
        group["advert_interval_ms"] = self.advert_ms
        key = workdir / "secrets" / "ha.key"
        if not key.exists():
            key.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(EXAMPLES / "secrets" / "ha.key", key)
            key.chmod(0o600)
        group["auth_key_file"] = str(key)
        path = workdir / f"triolb-{node}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def start(self, lab: LabHandle, workdir: Path) -> None:
        for node in NODES:
            argv = [sys.executable, "-m", "appliance", "run", "--config"]
            argv += [str(self.config(node, workdir)), "--log-format", "json"]
            lab.spawn(node, _process_name(self.name, node), argv)
        for node in NODES:
            lab.wait_for_log(_process_name(self.name, node), "daemon_ready", READY_TIMEOUT_S)

    def stop(self, lab: LabHandle) -> None:
        _stop_all(lab, self.name)


KEEPALIVED_CONF = """\
# failover_l2 benchmark: {node}
global_defs {{
    router_id {node}
    vrrp_version 3
}}

vrrp_instance VI_{group} {{
    state BACKUP
    interface eth0
    virtual_router_id {group}
    priority {priority}
    advert_int {advert_s}
    unicast_src_ip {address}
    unicast_peer {{
        {peer}
    }}
    virtual_ipaddress {{
        {vip}/32 dev eth0
    }}
}}
"""


class Keepalived:
    """Debian's keepalived, VRRP only, one process tree per node, its files in ``workdir``."""

    name = "keepalived"
    binary = "keepalived"

    def __init__(self, advert_ms: int) -> None:
        self.advert_ms = advert_ms

    def prepare(self) -> dict[str, Any]:
        path = shutil.which(self.binary)
        if path is None:
            raise HaUnavailable("keepalived is not installed (apt-get install keepalived)")
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
        first = (out.stdout + out.stderr).strip().splitlines()
        return {"version": first[0] if first else None, "binary": path, "auth": "none"}

    def config(self, node: str, workdir: Path) -> Path:
        text = KEEPALIVED_CONF.format(
            node=node,
            group=GROUP_ID,
            priority=PRIORITIES[node],
            advert_s=f"{self.advert_ms / 1000:g}",
            address=ADDRESSES[node],
            peer=ADDRESSES[_other(node)],
            vip=VIP,
        )
        path = workdir / f"keepalived-{node}.conf"
        path.write_text(text)
        return path

    def argv(self, node: str, workdir: Path) -> list[str]:
        conf = self.config(node, workdir)
        check = subprocess.run(
            [self.binary, "--config-test", "-f", str(conf)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check.returncode != 0:
            raise HaUnavailable(f"keepalived rejects {conf}: {check.stderr.strip()}")
        return [
            self.binary,
            "--dont-fork",
            "--log-console",
            "--no-syslog",
            "--vrrp",
            "--use-file",
            str(conf),
            "--pid",
            str(workdir / f"keepalived-{node}.pid"),
            "--vrrp_pid",
            str(workdir / f"keepalived-{node}-vrrp.pid"),
        ]

    def start(self, lab: LabHandle, workdir: Path) -> None:
        for node in NODES:
            lab.spawn(node, _process_name(self.name, node), self.argv(node, workdir))
        for node in NODES:
            lab.wait_for_log(_process_name(self.name, node), "Entering", READY_TIMEOUT_S)

    def stop(self, lab: LabHandle) -> None:
        _stop_all(lab, self.name)


def make(name: str, advert_ms: int) -> HaImplementation:
    if name == Triolb.name:
        return Triolb(advert_ms)
    if name == Keepalived.name:
        return Keepalived(advert_ms)
    raise ValueError(f"unknown implementation {name!r}")


IMPLEMENTATIONS = (Triolb.name, Keepalived.name)
