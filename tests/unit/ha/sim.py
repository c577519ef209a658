"""A virtual-time network of VRRP instances: adverts go through the real codec, instantly."""

from __future__ import annotations

import ipaddress

from appliance.config.values import IPAddress
from appliance.ha.instance import (
    Event,
    InstanceConfig,
    SendAdvert,
    State,
    StateChanged,
    VrrpInstance,
)
from appliance.ha.wire import VRRP_GROUP_V4, Advert, decode, encode

VIP = ipaddress.IPv4Address("192.0.2.100")


def addr(n: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(f"192.0.2.{n}")


def config(
    n: int,
    priority: int = 100,
    *,
    preempt: bool = True,
    preempt_delay_s: float = 0.0,
    join_gate_timeout_s: float = 60.0,
) -> InstanceConfig:
    """Node ``n`` (address 192.0.2.n) in group 1 with a 1 s advertisement interval."""
    return InstanceConfig(
        vrid=1,
        primary_address=addr(n),
        priority=priority,
        preempt=preempt,
        preempt_delay_s=preempt_delay_s,
        join_gate_timeout_s=join_gate_timeout_s,
    )


class Net:
    """Instances on one segment. ``connected[name]`` False cuts a node off (both directions)."""

    def __init__(self, **instances: VrrpInstance) -> None:
        self.nodes = instances
        self.connected = dict.fromkeys(instances, True)
        self.now = 0.0
        self.log: list[tuple[float, str, Event]] = []

    def __getitem__(self, name: str) -> VrrpInstance:
        return self.nodes[name]

    def state(self, name: str) -> State:
        return self.nodes[name].state

    def masters(self) -> list[str]:
        return [n for n, i in self.nodes.items() if i.state is State.MASTER]

    def act(self, now: float) -> None:
        """Deliver every pending event (and the replies they cause) at ``now``."""
        self.now = now
        moved = True
        while moved:
            moved = False
            for name, inst in self.nodes.items():
                for ev in inst.events():
                    moved = True
                    self.log.append((now, name, ev))
                    if isinstance(ev, SendAdvert):
                        self._send(name, ev, now)

    def _send(self, name: str, ev: SendAdvert, now: float) -> None:
        src: IPAddress = self.nodes[name].config.primary_address
        data = encode(Advert(1, ev.priority, ev.interval_cs, (VIP,)), src, VRRP_GROUP_V4)
        if not self.connected[name]:
            return
        for other, inst in self.nodes.items():
            if other != name and self.connected[other]:
                inst.receive_advert(decode(data, src, VRRP_GROUP_V4), src, now)

    def run_until(self, until: float) -> None:
        self.act(self.now)
        while True:
            due = [(t, n) for n, i in self.nodes.items() if (t := i.get_timer()) is not None]
            if not due or min(due)[0] > until:
                break
            t = min(due)[0]
            for _, name in sorted(d for d in due if d[0] == t):
                self.nodes[name].handle_timer(t)
            self.act(t)
        self.now = until

    def transitions(self, name: str | None = None) -> list[tuple[float, str, State, State]]:
        return [
            (t, n, e.old, e.new)
            for t, n, e in self.log
            if isinstance(e, StateChanged) and (name is None or n == name)
        ]

    def adverts(self, name: str) -> list[tuple[float, int]]:
        return [(t, e.priority) for t, n, e in self.log if n == name and isinstance(e, SendAdvert)]
