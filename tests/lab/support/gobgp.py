"""GoBGP as the interop peer: ``gobgpd`` in the lab's router namespace (a lab started with
``start_router=False``), its TOML config, and queries through the ``gobgp`` CLI (JSON output)
against a gRPC API bound to the router namespace's loopback."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import Any

import attrs

from appliance.lab.api import LabHandle
from appliance.lab.scenarios import NODE_ADDRESSES, ROUTER_CLUSTER_ADDRESS
from tests.lab.support.nodes import NODE6, ROUTER6
from tests.lab.support.polling import DEFAULT_TIMEOUT, wait_for

GOBGPD = "gobgpd"
API_HOST = "127.0.0.1"  # the router namespace's own loopback
API_PORT = 50051
CLI_TIMEOUT = 10.0


def gobgp_available() -> bool:
    return shutil.which("gobgpd") is not None and shutil.which("gobgp") is not None


@attrs.frozen
class GobgpNeighbor:
    address: str
    peer_as: int
    families: tuple[str, ...] = ("ipv4-unicast",)  # GoBGP afi-safi names


def neighbor(node: str, peer_as: int, *, ipv6: bool = False) -> GobgpNeighbor:
    """``node`` over IPv4 (ipv4-unicast) or, with ``ipv6``, over fd00:80:: (ipv6-unicast)."""
    if ipv6:
        return GobgpNeighbor(NODE6[node], peer_as, ("ipv6-unicast",))
    return GobgpNeighbor(NODE_ADDRESSES[node], peer_as)


def render_gobgp_toml(asn: int, neighbors: tuple[GobgpNeighbor, ...]) -> str:
    """The lab router as a GoBGP speaker (router id 192.168.80.254) with these neighbours."""
    local = [ROUTER_CLUSTER_ADDRESS]
    if any(":" in n.address for n in neighbors):
        local.append(ROUTER6)
    lines = [
        "[global.config]",
        f"  as = {asn}",
        f'  router-id = "{ROUTER_CLUSTER_ADDRESS}"',
        "  port = 179",
        "  local-address-list = [" + ", ".join(f'"{a}"' for a in local) + "]",
    ]
    for peer in neighbors:
        lines += [
            "",
            "[[neighbors]]",
            "  [neighbors.config]",
            f'    neighbor-address = "{peer.address}"',
            f"    peer-as = {peer.peer_as}",
            "  [neighbors.timers.config]",
            "    connect-retry = 2",
            "    hold-time = 9",
            "    keepalive-interval = 3",
        ]
        for family in peer.families:
            lines += [
                "  [[neighbors.afi-safis]]",
                "    [neighbors.afi-safis.config]",
                f'      afi-safi-name = "{family}"',
            ]
    return "\n".join(lines) + "\n"


class Gobgp:
    """gobgpd in the router namespace for one test: started with a config, queried, stopped."""

    def __init__(self, handle: LabHandle, asn: int, neighbors: tuple[GobgpNeighbor, ...]) -> None:
        self.handle = handle
        stop_gobgpd(handle)
        conf = handle.log_dir / "gobgpd.toml"
        conf.write_text(render_gobgp_toml(asn, neighbors))
        check = handle.exec("router", [GOBGPD, "-d", "-f", str(conf)], timeout=CLI_TIMEOUT)
        assert check.returncode == 0, f"gobgpd rejects {conf}: {check.stdout}{check.stderr}"
        argv = [
            GOBGPD,
            "-f",
            str(conf),
            f"--api-hosts={API_HOST}:{API_PORT}",
            "--log-plain",
            "--pprof-disable",
        ]
        handle.spawn("router", GOBGPD, argv)
        wait_for(self._answers, "gobgpd API", DEFAULT_TIMEOUT, self.log_tail)

    def _answers(self) -> bool:
        result = self.handle.exec("router", self._cli("global"), timeout=CLI_TIMEOUT)
        return result.returncode == 0

    def stop(self) -> None:
        stop_gobgpd(self.handle)

    def log_tail(self) -> str:
        return self.handle.log_tail(GOBGPD, 40)

    @staticmethod
    def _cli(*args: str) -> list[str]:
        return ["gobgp", "-u", API_HOST, "-p", str(API_PORT), *args, "-j"]

    def query(self, *args: str) -> Any:
        """``gobgp <args> -j`` against this gobgpd; the parsed JSON."""
        argv = self._cli(*args)
        result = self.handle.exec("router", argv, timeout=CLI_TIMEOUT)
        assert result.returncode == 0, f"{' '.join(argv)}: {result.stderr or result.stdout}"
        return json.loads(result.stdout or "null")

    # --- sessions --------------------------------------------------------------------------

    def session_state(self, address: str) -> str:
        """GoBGP's view of the session with ``address`` (e.g. ``established``, ``active``)."""
        state = self.query("neighbor", address).get("state", {}).get("session_state", 0)
        if isinstance(state, int) and 0 <= state < len(SESSION_STATES):
            return SESSION_STATES[state]
        return str(state).lower()

    def wait_established(self, address: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        wait_for(
            lambda: self.session_state(address) == "established",
            f"GoBGP session with {address} established",
            timeout,
            lambda: f"{self.query('neighbor', address)}\n{self.log_tail()}",
        )

    # --- routes ----------------------------------------------------------------------------

    def rib(self, family: str = "ipv4") -> dict[str, list[GobgpPath]]:
        """The global RIB of ``family`` (ipv4 / ipv6): prefix -> its paths."""
        doc = self.query("global", "rib", "-a", family) or {}
        return {prefix: [_path(prefix, raw) for raw in paths] for prefix, paths in doc.items()}

    def wait_paths(
        self,
        prefix: str,
        check: Callable[[list[GobgpPath]], bool],
        what: str,
        family: str = "ipv4",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> list[GobgpPath]:
        """Wait until ``check(paths of prefix)`` holds in the global RIB; returns the paths."""

        def probe() -> tuple[list[GobgpPath]] | None:
            paths = self.rib(family).get(prefix, [])
            return (paths,) if check(paths) else None  # a tuple: [] may be the answer

        (paths,) = wait_for(
            probe,
            f"GoBGP: {what}",
            timeout,
            lambda: f"{self.query('global', 'rib', '-a', family)}\n{self.log_tail()}",
        )
        return paths


def stop_gobgpd(handle: LabHandle) -> None:
    if any(p.name == GOBGPD for p in handle.processes):
        handle.stop(GOBGPD)


#: apipb.PeerState.SessionState, which ``gobgp neighbor <address> -j`` prints as a number.
SESSION_STATES = ("unknown", "idle", "connect", "active", "opensent", "openconfirm", "established")


@attrs.frozen
class GobgpPath:
    """One path of ``gobgp global rib -j`` with the attributes the tests look at."""

    prefix: str
    best: bool
    next_hop: str | None
    med: int | None
    as_path: tuple[int, ...]
    source: str  # the neighbour it came from


def one_path(paths: list[GobgpPath]) -> bool:
    return len(paths) == 1


def _path(prefix: str, raw: dict[str, Any]) -> GobgpPath:
    next_hop, med, as_path = None, None, ()
    for attr in raw.get("attrs", []):
        kind = attr.get("type")
        if kind == 3:  # NEXT_HOP
            next_hop = attr.get("nexthop")
        elif kind == 4:  # MULTI_EXIT_DISC
            med = attr.get("metric")
        elif kind == 2:  # AS_PATH
            as_path = tuple(asn for segment in attr.get("as_paths", []) for asn in segment["asns"])
        elif kind == 14:  # MP_REACH_NLRI
            next_hop = attr.get("nexthop", next_hop)
    return GobgpPath(
        prefix,
        bool(raw.get("best")),
        next_hop,
        med,
        as_path,
        str(raw.get("neighbor-ip") or raw.get("source-id") or ""),
    )
