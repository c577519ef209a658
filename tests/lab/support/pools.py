"""Helpers of the VIP pool lab test: scenario 3 configs whose services take their VIP from
the pool ``lab-vips`` (198.51.100.0/24), a daemon per node (start, stop, SIGHUP reload), and
three views of a node's allocation: the daemon's ``pool_allocation`` log event, the services
of ``triolb show --json services`` and the saved ``<lab log dir>/state/<node>/pools.json``.

Every wait is a bounded poll; nothing here runs outside the lab's namespaces.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle
from tests.lab.support import dataplane as dp
from tests.lab.support import nodes
from tests.lab.support.bird_configs import parse_routes
from tests.lab.support.polling import wait_for

POOL = "lab-vips"
POOL_CIDR = ipaddress.ip_network("198.51.100.0/24")
NODE_ADDRESSES = {"node1": nodes.NODE1, "node2": nodes.NODE2}
TRIOLB = [sys.executable, "-m", "appliance"]
WAIT_S = 30.0

Allocation = dict[str, str]  # service name -> address


def pool_service(
    name: str, port: int, *, endpoint_port: int | None = None, **options: Any
) -> dict[str, Any]:
    """A default-mode maglev service on ep1..ep3 that takes its VIP from the pool (no probe:
    every endpoint counts as healthy, so every service is advertised)."""
    body = dp.service(
        name,
        "unused",
        port,
        mode="default",
        selection="maglev",
        endpoint_port=endpoint_port,
        **options,
    )
    del body["vip"]
    return {"name": name, "pool": POOL, **{k: v for k, v in body.items() if k != "name"}}


def write_node_config(workdir: Path, node: str, services: Sequence[dict[str, Any]]) -> Path:
    """``<workdir>/<node>.yaml``: examples/scenario3-bgp-ecmp-<node>.yaml with ``services``
    instead of the example's (validated with the product's loader before it is used), and BGP
    graceful restart off: a stopped daemon then withdraws its routes at once (Cease) instead of
    leaving them at the router for the 30 s restart time, so the test sees a restarted daemon
    advertise its addresses anew, and stops no slower."""
    doc = nodes.example_config(nodes.SCENARIO3, node)
    assert [p["name"] for p in doc["vip_pools"]] == [POOL], doc["vip_pools"]
    doc["services"] = [dict(s) for s in services]
    doc["bgp"]["graceful_restart"] = {"enabled": False}
    return nodes.write_config(workdir, node, doc)


class Daemon:
    """One node's ``triolb run`` in its namespace; each start is a new lab process
    (``<node>-daemon-<n>``) with its own log."""

    def __init__(self, handle: LabHandle, node: str, config: Path) -> None:
        self.handle = handle
        self.node = node
        self.config = config
        self.starts = 0
        self.name = ""
        self.pid = 0

    def spawn(self) -> None:
        """Start the daemon (without waiting: both nodes compile their eBPF at once)."""
        self.starts += 1
        self.name = f"{self.node}-daemon-{self.starts}"
        argv = [*TRIOLB, "run", "--config", str(self.config), "--log-format", "json"]
        self.pid = self.handle.spawn(self.node, self.name, argv)

    def wait_ready(self) -> None:
        self.handle.wait_for_log(self.name, '"dataplane_ready"', timeout=dp.DAEMON_READY_S)
        self.handle.wait_for_log(self.name, '"daemon_ready"', timeout=WAIT_S)

    def stop(self) -> None:
        self.handle.stop(self.name)

    def events(self) -> list[dict[str, Any]]:
        return dp.events(self.handle, self.name)

    def reload(self, services: Sequence[dict[str, Any]]) -> None:
        """Rewrite the config with ``services``, SIGHUP, and return once the daemon applied it
        and reconciled its maps after it."""
        write_node_config(self.config.parent, self.node, services)
        before = len(self.events())
        os.kill(self.pid, signal.SIGHUP)

        def reconciled() -> bool:
            kinds = [e["event"] for e in self.events()[before:]]
            assert "reload_rejected" not in kinds, self.events()[before:]
            # logged once every service answered the new generation: the maps are programmed
            return "reload_applied" in kinds

        wait_for(reconciled, f"{self.node}: the reload applied and reconciled", WAIT_S)

    # --- the allocation, three ways ----------------------------------------------------------

    def logged_allocation(self) -> Allocation:
        """The addresses of this run's last ``pool_allocation`` event."""
        found = [e for e in self.events() if e["event"] == "pool_allocation"]
        assert found, f"{self.name} logged no pool_allocation:\n{self.handle.log_tail(self.name)}"
        return {str(k): str(v) for k, v in found[-1]["addresses"].items()}

    def saved_allocation(self) -> Allocation:
        """``<lab log dir>/state/<node>/pools.json`` ({} while there is none)."""
        path = self.handle.log_dir / "state" / self.node / "pools.json"
        try:
            doc = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {str(k): str(v) for k, v in doc["addresses"].items()}

    def save_allocation(self, allocation: Allocation) -> None:
        """Overwrite the saved allocation (the daemon stopped), in the file's own format."""
        path = self.handle.log_dir / "state" / self.node / "pools.json"
        path.write_text(json.dumps({"addresses": dict(sorted(allocation.items()))}, indent=2))

    def services_json(self) -> list[dict[str, Any]]:
        """The dataplane's services as ``show --json services`` prints them."""
        argv = [*TRIOLB, "show", "--json", "services"]
        result = self.handle.exec(self.node, argv, timeout=20)
        assert result.returncode == 0, result.stderr
        services: list[dict[str, Any]] = json.loads(result.stdout)["services"]
        return services

    def programmed(self) -> dict[str, str]:
        """Service name -> VIP as the dataplane has it."""
        return {str(s["name"]): str(s["vip"]) for s in self.services_json()}

    def allocation(self, names: Sequence[str]) -> Allocation:
        """The allocation of ``names`` once log, saved file and dataplane all agree on it
        (asserted: a disagreement fails with the three views)."""

        def views() -> tuple[Allocation, Allocation, Allocation]:
            return self.logged_allocation(), self.saved_allocation(), self.programmed()

        def agreed() -> Allocation | None:
            logged, saved, programmed = views()
            if set(logged) == set(names) and logged == saved == programmed:
                return logged
            return None

        return wait_for(
            agreed, f"{self.node}: one allocation of {sorted(names)}", WAIT_S, lambda: repr(views())
        )


def assert_well_formed(allocation: Allocation, names: Sequence[str]) -> None:
    """Every service has its own address, inside the pool."""
    assert sorted(allocation) == sorted(names), allocation
    for name, address in allocation.items():
        assert ipaddress.ip_address(address) in POOL_CIDR, (name, address)
    assert len(set(allocation.values())) == len(allocation), allocation


def bird_next_hops(handle: LabHandle) -> dict[str, set[str]]:
    """The router's BGP routes inside the pool: /32 prefix -> next hops (one per node)."""
    try:
        text = handle.birdc(f"show route in {POOL_CIDR} all")
    except RuntimeError:  # birdc exits non-zero when there is no route at all
        return {}
    hops: dict[str, set[str]] = {}
    for route in parse_routes(text):
        hops.setdefault(route.prefix, set()).update(route.via)
    return hops


def wait_bird_routes(handle: LabHandle, expected: dict[str, set[str]]) -> None:
    """Wait until BIRD's routes inside the pool are exactly ``expected`` (prefix -> hops)."""
    wait_for(
        lambda: bird_next_hops(handle) == expected,
        f"BIRD routes {expected}",
        WAIT_S,
        lambda: repr(bird_next_hops(handle)),
    )
