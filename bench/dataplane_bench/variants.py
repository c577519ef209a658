"""The three paths under test. Each sets itself up on the running lab, says where the client
connects, and removes what it added (also after a failed set-up).

- ``direct``: client -> router -> endpoint, no load balancer (the ceiling);
- ``nftables``: node1 DNATs the VIP with an nftables table in its namespace and kernel conntrack
  undoes it on the replies (``numgen inc mod 3`` spreads the web service like round robin);
- ``triolb``: node1 runs the triolb daemon; its eBPF program at TC ingress on eth0 does the NAT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from appliance.lab.api import LabHandle

from . import triolb
from .paths import (
    ENDPOINTS,
    HTTP_PORT,
    IPERF_PORT,
    LB_NODE,
    THROUGHPUT_ENDPOINT,
    VIP,
    check_reachable,
    route_replies_via_lb,
    run,
)

NFT_TABLE = "dpbench"


class Variant(Protocol):
    name: str
    #: where the client connects (the VIP, or ep1 itself)
    target: str

    def setup(self, lab: LabHandle, workdir: Path) -> dict[str, Any]:
        """Make the path work; facts for the report. Raises on failure (then teardown)."""
        ...

    def between_runs(self, lab: LabHandle) -> dict[str, Any]:
        """After each measurement: facts for the report, and whatever resets the next run."""
        ...

    def teardown(self, lab: LabHandle) -> None:
        """Remove what setup added. Idempotent; safe after a partial setup."""
        ...


class Direct:
    name = "direct"
    target = ENDPOINTS[THROUGHPUT_ENDPOINT]

    def setup(self, lab: LabHandle, workdir: Path) -> dict[str, Any]:
        route_replies_via_lb(lab, on=False)
        check_reachable(lab, self.target, HTTP_PORT)
        return {"path": "client -> router -> ep1"}

    def between_runs(self, lab: LabHandle) -> dict[str, Any]:
        return {}

    def teardown(self, lab: LabHandle) -> None:
        return None


def nft_ruleset() -> str:
    """DNAT of the two services in prerouting; conntrack does the reverse on the replies."""
    spread = ", ".join(f"{index} : {address}" for index, address in enumerate(ENDPOINTS.values()))
    web = f"numgen inc mod {len(ENDPOINTS)} map {{ {spread} }}"
    return f"""\
table ip {NFT_TABLE} {{
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {VIP} tcp dport {IPERF_PORT} dnat to {ENDPOINTS[THROUGHPUT_ENDPOINT]}
        ip daddr {VIP} tcp dport {HTTP_PORT} dnat to {web}
    }}
}}
"""


class Nftables:
    name = "nftables"
    target = VIP

    def setup(self, lab: LabHandle, workdir: Path) -> dict[str, Any]:
        route_replies_via_lb(lab, on=True)
        run(lab, LB_NODE, ["nft", "-f", str(self._write(workdir))])
        lab.exec(LB_NODE, ["conntrack", "-F"], timeout=10)
        check_reachable(lab, VIP, HTTP_PORT)
        version = run(lab, LB_NODE, ["nft", "--version"]).strip()
        return {"ruleset": nft_ruleset(), "nft": version}

    @staticmethod
    def _write(workdir: Path) -> Path:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "dpbench.nft"
        path.write_text(nft_ruleset())
        return path

    def between_runs(self, lab: LabHandle) -> dict[str, Any]:
        """Conntrack entries left by the run (TIME_WAIT: 120 s), then flushed so that runs are
        independent and the table never fills."""
        count = lab.exec(LB_NODE, ["cat", "/proc/sys/net/netfilter/nf_conntrack_count"], 10)
        lab.exec(LB_NODE, ["conntrack", "-F"], timeout=10)
        return {"conntrack_entries": int(count.stdout.strip() or 0)}

    def teardown(self, lab: LabHandle) -> None:
        lab.exec(LB_NODE, ["nft", "delete", "table", "ip", NFT_TABLE], timeout=10)
        lab.exec(LB_NODE, ["conntrack", "-F"], timeout=10)
        route_replies_via_lb(lab, on=False)


class Triolb:
    name = "triolb"
    target = VIP

    def __init__(self, ready_timeout_s: float) -> None:
        self.ready_timeout_s = ready_timeout_s
        self.node = triolb.node_name()

    def setup(self, lab: LabHandle, workdir: Path) -> dict[str, Any]:
        config = triolb.write_config(workdir, triolb.daemon_config(self.node))
        route_replies_via_lb(lab, on=True)
        info = triolb.start_daemon(lab, config, self.ready_timeout_s)
        check_reachable(lab, VIP, HTTP_PORT)
        return {"node_name": self.node, "config": str(config), **info}

    def between_runs(self, lab: LabHandle) -> dict[str, Any]:
        if not lab.alive(triolb.DAEMON):
            raise RuntimeError("the triolb daemon died during the run")
        return {}

    def teardown(self, lab: LabHandle) -> None:
        triolb.stop_daemon(lab, self.node)
        route_replies_via_lb(lab, on=False)


VARIANT_NAMES = ("direct", "nftables", "triolb")


def make_variant(name: str, ready_timeout_s: float) -> Variant:
    if name == "direct":
        return Direct()
    if name == "nftables":
        return Nftables()
    if name == "triolb":
        return Triolb(ready_timeout_s)
    raise ValueError(f"unknown variant {name!r}")
