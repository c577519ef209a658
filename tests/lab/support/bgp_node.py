"""Test harness: the BGP speaker and intent controller of one node, roles set from a file.

The HA election (its own issue) normally publishes the roles; here a test writes them into a
JSON control file (`{"roles": {"1": "active"}, "shutdown": "text"}`), polled every 50 ms. The
harness writes its status (pid, neighbours, Loc-RIB prefixes, loop lag) as JSON to `--status`
several times a second.

SIGTERM and SIGINT stop it the way the daemon stops: the nursery is cancelled, so the speaker
runs its own exit path (with graceful restart enabled: close without NOTIFICATION; without:
an administrative-shutdown Cease). It prints ``bgp_node_ready pid=<pid>`` once the speaker
runs and ``bgp_node_stopped pid=<pid>`` when it has finished.

    python -m tests.lab.support.bgp_node --config node1.yaml --control c.json --status s.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from pathlib import Path

import trio

from appliance.config import load_config
from appliance.controller import IntentController
from appliance.intent import HaRole, role_key
from appliance.keys import RUNNING_CONFIG
from appliance.looplag import LOOP_LAG, LoopLagMonitor
from appliance.state import StateStore
from appliance.structlog import configure_logging
from bgp.speaker import BgpSpeaker
from web.jsonable import to_jsonable

STATUS_PERIOD_S = 0.2
CONTROL_PERIOD_S = 0.05


async def follow_control(store: StateStore, speaker: BgpSpeaker, control: Path) -> None:
    shut = False
    while True:
        try:
            doc = json.loads(control.read_text())
        except (OSError, ValueError):
            doc = {}
        for group, role in doc.get("roles", {}).items():
            if store.get(role_key(int(group))) is not HaRole(role):
                store.publish(role_key(int(group)), HaRole(role))
        if "shutdown" in doc and not shut:
            shut = True
            await speaker.shutdown(doc["shutdown"])
        await trio.sleep(CONTROL_PERIOD_S)


def status_document(store: StateStore, speaker: BgpSpeaker) -> dict[str, object]:
    lag = store.get(LOOP_LAG)
    return {
        "pid": os.getpid(),
        "neighbors": to_jsonable(store.snapshot("bgp/neighbor/")),
        "best": sorted(str(route.prefix) for route in speaker.best()),
        "received": sorted(str(route.prefix) for route in speaker.received()),
        "loop_lag": to_jsonable(lag),
        "intent": to_jsonable(store.snapshot("intent")),
    }


async def write_status(store: StateStore, speaker: BgpSpeaker, status: Path) -> None:
    tmp = status.with_suffix(".tmp")
    while True:
        tmp.write_text(json.dumps(status_document(store, speaker)))
        tmp.replace(status)
        await trio.sleep(STATUS_PERIOD_S)


async def main(args: argparse.Namespace) -> None:
    cfg = load_config(Path(args.config))
    assert cfg.bgp is not None
    store = StateStore()
    store.publish(RUNNING_CONFIG, cfg)
    speaker = BgpSpeaker(cfg.bgp, store)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(LoopLagMonitor(store).run)
            await nursery.start(IntentController(store).run)
            await nursery.start(speaker.run)
            nursery.start_soon(follow_control, store, speaker, Path(args.control))
            nursery.start_soon(write_status, store, speaker, Path(args.status))
            print(f"bgp_node_ready pid={os.getpid()}", flush=True)
            async for signum in signals:
                print(f"bgp_node_stopping signal={signal.Signals(signum).name}", flush=True)
                nursery.cancel_scope.cancel()
                break
    print(f"bgp_node_stopped pid={os.getpid()}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--status", required=True)
    configure_logging("text", "info")
    trio.run(main, parser.parse_args())
