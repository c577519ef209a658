"""A receive-only speaker for the ingest benchmark (`bench/bgp_ingest.py`).

Runs the real speaker (session, Adj-RIB-In, import policy, Loc-RIB) against one peer, accepts
every IPv4 prefix, and prints JSON lines: `established`, `progress` (about twice a second) and
`done` when `--expect` prefixes are in the Adj-RIB-In (or `timeout`), with the event-loop lag
p99 measured during the ingest.

    python -m bgp.bench_receiver --local-as 65100 --router-id 192.168.80.252 \\
        --peer 192.168.80.254 --peer-as 65101 --expect 1000000 --timeout 600
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import sys
import time

import trio

from appliance.config.model import Bgp, BgpPeer, GracefulRestart
from appliance.config.values import PrefixFilter
from appliance.looplag import LagWindow, LoopLagMonitor
from appliance.state import StateStore

from .fsm import State
from .speaker import BgpSpeaker
from .types import IPV4_UNICAST


class SlowSteps(trio.abc.Instrument):
    """Records the longest task steps (name, seconds): what keeps the loop from others."""

    def __init__(self) -> None:
        self.started = 0.0
        self.slowest: list[tuple[float, str]] = []
        self.gc_started = 0.0
        self.gc_pauses: list[tuple[float, int]] = []
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        else:
            took = time.perf_counter() - self.gc_started
            if took > 0.002:
                self.gc_pauses.append((round(took * 1000, 1), info["generation"]))

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.started = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self.started
        if took > 0.005:
            self.slowest.append((took, task.name))
            self.slowest.sort(reverse=True)
            del self.slowest[20:]


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


async def receive(args: argparse.Namespace) -> None:
    peer_address = ipaddress.ip_address(args.peer)
    bgp = Bgp(
        asn=args.local_as,
        router_id=ipaddress.IPv4Address(args.router_id),
        listen_port=0,
        peers=(BgpPeer(address=peer_address, asn=args.peer_as, hold_time=90),),
        imports=(PrefixFilter(ipaddress.IPv4Network("0.0.0.0/0"), 0, 32),),
        graceful_restart=GracefulRestart(enabled=False),
    )
    store = StateStore()
    speaker = BgpSpeaker(bgp, store)
    monitor = LoopLagMonitor(store, interval=0.01)
    state = speaker.peers[peer_address]
    with trio.move_on_after(args.timeout) as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(monitor.run)
            await nursery.start(speaker.run)
            while state.runner.session.state is not State.ESTABLISHED:
                await trio.sleep(0.005)
            emit("established")
            monitor.window = LagWindow(size=1_000_000)  # lag during ingest only
            last_progress = 0.0
            while True:
                count = state.adj_in.count(IPV4_UNICAST) if state.adj_in is not None else 0
                if count >= args.expect:
                    break
                if time.monotonic() - last_progress >= 0.5:
                    emit("progress", received=count)
                    last_progress = time.monotonic()
                await trio.sleep(0.01)
            lag = monitor.window.summary()
            emit(
                "done",
                received=count,
                loop_lag_p99_ms=round(lag.p99_s * 1000, 3),
                loop_lag_max_ms=round(lag.max_s * 1000, 3),
                accepted=state.policy.accepted if state.policy else 0,
                best=speaker.loc_rib.count(IPV4_UNICAST),
                gc_pauses_ms=STEPS.gc_pauses[:20],
                slowest_steps_ms=[(round(t * 1000, 1), n) for t, n in STEPS.slowest[:8]],
            )
            nursery.cancel_scope.cancel()
    if scope.cancelled_caught:
        count = state.adj_in.count(IPV4_UNICAST) if state.adj_in is not None else 0
        emit("timeout", received=count)
        sys.exit(1)


STEPS = SlowSteps()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bgp.bench_receiver")
    parser.add_argument("--local-as", type=int, required=True)
    parser.add_argument("--router-id", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--peer-as", type=int, required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    trio.run(receive, parser.parse_args(), instruments=[STEPS])


if __name__ == "__main__":
    main()
