"""What node2 saw of each failover, from a tcpdump of VRRP and ARP on its eth0.

Splits a trial's gap into the election (node1's last advert to node2's first: the
Master_Down_Interval plus the daemon's lateness) and the announcement (node2's first advert to
its first gratuitous ARP for the VIP, which is what redirects the client).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

from appliance.lab.api import LabHandle

from .peers import ADDRESSES, VIP

NODE1, NODE2 = ADDRESSES["node1"], ADDRESSES["node2"]
ADVERT = re.compile(r"^(\d+\.\d+) IP (\S+) > (\S+): VRRPv3, Advertisement")
GARP = re.compile(rf"^(\d+\.\d+) ARP, Request who-has {re.escape(VIP)} .*tell {re.escape(VIP)},")
FILTER = "vrrp or arp"


@dataclass(frozen=True)
class Event:
    t: float
    kind: str  # "advert1", "advert2" (by sender) or "garp"


def available() -> bool:
    return shutil.which("tcpdump") is not None


def start(lab: LabHandle, name: str) -> None:
    argv = ["tcpdump", "-i", "eth0", "-n", "-tt", "-l", "-p", FILTER]
    lab.spawn("node2", name, argv)
    lab.wait_for_log(name, "listening on")


def parse(text: str) -> list[Event]:
    found: list[Event] = []
    for line in text.splitlines():
        if match := ADVERT.match(line):
            sender = match.group(2)
            if sender in (NODE1, NODE2):
                found.append(
                    Event(float(match.group(1)), "advert1" if sender == NODE1 else "advert2")
                )
        elif match := GARP.match(line):
            found.append(Event(float(match.group(1)), "garp"))
    return found


def failovers(events: list[Event], min_silence_s: float) -> list[dict[str, float | None]]:
    """One entry per takeover by node2, in order: its first advert after node1's, once node1
    has been silent for ``min_silence_s`` (shorter: an advert of node2's that crossed node1's
    on its return, not a takeover)."""
    out: list[dict[str, float | None]] = []
    last_node1: int | None = None  # index of node1's latest advert
    previous = ""
    for index, event in enumerate(events):
        if (
            event.kind == "advert2"
            and previous == "advert1"
            and last_node1 is not None
            and event.t - events[last_node1].t >= min_silence_s
        ):
            out.append(_one(events, last_node1, index))
        if event.kind == "advert1":
            last_node1 = index
        if event.kind != "garp":
            previous = event.kind
    return out


def _one(events: list[Event], last_node1: int, first_node2: int) -> dict[str, float | None]:
    """Election: node1's last advert to node2's first. Announcement: node2's first advert to
    the first gratuitous ARP for the VIP after node1's last advert (negative if before)."""
    garp = None
    for later in events[last_node1 + 1 :]:
        if later.kind == "advert1":
            break  # node1 is back: no announcement by node2 in between
        if later.kind == "garp":
            garp = later.t
            break
    start, first = events[last_node1].t, events[first_node2].t
    return {
        "election_ms": round((first - start) * 1000, 2),
        "announce_ms": round((garp - first) * 1000, 2) if garp is not None else None,
    }


def stop(lab: LabHandle, name: str, advert_s: float) -> list[dict[str, float | None]]:
    """Stop the capture and return its failovers (node1 silent for 2 advert intervals: a
    backup takes over after 3 and a skew)."""
    path = lab.log_path(name)
    lab.stop(name)
    return failovers(parse(path.read_text(errors="replace")), 2 * advert_s)
