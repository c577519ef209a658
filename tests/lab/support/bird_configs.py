"""BIRD 2 as the interop peer: per-test router configs, (re)start in the lab's router
namespace, and parsing of what birdc shows (protocol state, routes with their attributes)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from appliance.lab import bird
from appliance.lab.api import LabHandle
from appliance.lab.bird import BgpNeighbor, BirdConfig
from appliance.lab.scenarios import NODE_ADDRESSES, ROUTER_CLUSTER_ADDRESS
from appliance.lab.state import save_state
from tests.lab.support.nodes import NODE6, ROUTER6
from tests.lab.support.polling import DEFAULT_TIMEOUT, wait_for

BIRD = "bird"


def neighbor(node: str, *, ipv6: bool = False, **options: Any) -> BgpNeighbor:
    """A BGP protocol towards ``node``: named ``node`` over IPv4 (192.168.80.x); with ``ipv6``
    named ``<node>v6``, between the fd00:80:: addresses, with the ipv6 channel only. Other
    options as in `BgpNeighbor` (remote_as, password, graceful_restart, export, …)."""
    if ipv6:
        options.setdefault("local_address", ROUTER6)
        options.setdefault("channels", ("ipv6",))
        return BgpNeighbor(f"{node}v6", NODE6[node], **options)
    return BgpNeighbor(node, NODE_ADDRESSES[node], **options)


def router_config(*neighbors: BgpNeighbor, **options: Any) -> BirdConfig:
    """The lab router (id and local address 192.168.80.254) with these neighbours."""
    return BirdConfig(ROUTER_CLUSTER_ADDRESS, ROUTER_CLUSTER_ADDRESS, tuple(neighbors), **options)


class Bird:
    """The router's BIRD for one test: started with a config, queried, stopped."""

    def __init__(self, handle: LabHandle, config: BirdConfig) -> None:
        self.handle = handle
        self.config = config
        self.log_path = handle.log_dir / f"{BIRD}.log"
        stop_bird(handle)
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        record, socket = bird.start_bird_with(
            handle.ns("router"), bird.render_bird_conf(config), handle.log_dir, BIRD
        )
        handle.state.processes.append(record)
        handle.state.bird_socket = socket
        save_state(handle.state)

    def stop(self) -> None:
        stop_bird(self.handle)

    def log(self) -> str:
        """What this BIRD logged (the log file is shared with earlier BIRDs of the lab)."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self._log_start)
                return handle.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def birdc(self, command: str) -> str:
        return self.handle.birdc(command)

    # --- protocols -------------------------------------------------------------------------

    def protocol(self, name: str) -> str:
        """``show protocols all <name>``."""
        return self.birdc(f"show protocols all {name}")

    def bgp_state(self, name: str) -> str:
        """The protocol's ``BGP state:`` (Established, Active, Connect, Idle, …)."""
        found = re.search(r"^\s*BGP state:\s+(\S+)", self.protocol(name), re.M)
        return found.group(1) if found else ""

    def wait_state(
        self, name: str, state: str = "Established", timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Wait until protocol ``name`` is in BGP state ``state``; returns its description."""
        wait_for(
            lambda: self.bgp_state(name) == state,
            f"BIRD protocol {name} {state}",
            timeout,
            lambda: self.protocol(name),
        )
        return self.protocol(name)

    def wait_protocol(
        self, name: str, check: Callable[[str], bool], what: str, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Wait until ``check(show protocols all <name>)`` holds; returns that text."""

        def probe() -> str | None:
            text = self.protocol(name)
            return text if check(text) else None

        found = wait_for(probe, f"BIRD: {what}", timeout, lambda: self.protocol(name))
        return found

    # --- routes ----------------------------------------------------------------------------

    def routes(self, prefix: str | None = None, table: str | None = None) -> list[BirdRoute]:
        """BIRD's routes (of ``prefix``; in ``table``, else master4/6), [] when none."""
        command = "show route" + (f" {prefix}" if prefix else "")
        command += f" table {table}" if table else ""
        try:
            return parse_routes(self.birdc(command + " all"))
        except RuntimeError as exc:  # "Network not found" makes birdc exit non-zero
            if "not found" in str(exc):
                return []
            raise

    def wait_routes(
        self,
        prefix: str,
        check: Callable[[list[BirdRoute]], bool],
        what: str,
        table: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[BirdRoute]:
        """Wait until ``check(routes of prefix)`` holds; returns those routes."""

        def probe() -> tuple[list[BirdRoute]] | None:
            found = self.routes(prefix, table)
            return (found,) if check(found) else None  # a tuple: [] may be the answer

        (found,) = wait_for(
            probe,
            f"BIRD: {what}",
            timeout,
            lambda: self.birdc("show route all") + self.birdc("show protocols"),
        )
        return found


def stop_bird(handle: LabHandle) -> None:
    if any(p.name == BIRD for p in handle.processes):
        handle.stop(BIRD)
    if handle.state.bird_socket is not None:
        handle.state.bird_socket = None
        save_state(handle.state)


# --- routes --------------------------------------------------------------------------------------


@attrs.frozen
class BirdRoute:
    """One route of ``show route … all``."""

    prefix: str
    kind: str  # unicast, unreachable, blackhole, …
    protocol: str
    primary: bool  # marked "*": BIRD's best route for the prefix
    via: tuple[str, ...]
    attributes: dict[str, str]  # "BGP.med" -> "10", …
    header: str  # the route's first line as BIRD printed it

    @property
    def med(self) -> int | None:
        value = self.attributes.get("BGP.med")
        return None if value is None else int(value)

    @property
    def as_path(self) -> list[int]:
        return [int(asn) for asn in self.attributes.get("BGP.as_path", "").split()]


_ROUTE = re.compile(
    r"^(?P<prefix>\S+)?\s+(?P<kind>\w+) \[(?P<proto>\S+) [^\]]*\](?P<best> \*)? \((?P<pref>\d+)"
)
_VIA = re.compile(r"^\s+via (?P<hop>\S+) on \S+")
_ATTR = re.compile(r"^\s+(?P<key>[\w.]+): (?P<value>.*)$")


def parse_routes(text: str) -> list[BirdRoute]:
    routes: list[BirdRoute] = []
    prefix = ""
    current: dict[str, Any] | None = None

    def close() -> None:
        if current is not None:
            routes.append(BirdRoute(**current))

    for line in text.splitlines():
        match = _ROUTE.match(line)
        if match:
            close()
            prefix = match["prefix"] or prefix
            current = {
                "prefix": prefix,
                "kind": match["kind"],
                "protocol": match["proto"],
                "primary": bool(match["best"]),
                "via": (),
                "attributes": {},
                "header": line.strip(),
            }
            continue
        if current is None:
            continue
        if via := _VIA.match(line):
            current["via"] = (*current["via"], via["hop"])
        elif attr := _ATTR.match(line):
            current["attributes"][attr["key"]] = attr["value"].strip()
    close()
    return routes


def one_route(found: list[BirdRoute]) -> bool:
    return len(found) == 1


def routes_via(found: Iterable[BirdRoute], hop: str) -> list[BirdRoute]:
    return [route for route in found if hop in route.via]
