"""Test harness: the BGP speaker and intent controller of one node, roles set from a file.

The HA election (its own issue) normally publishes the roles; here a test writes them into a
JSON control file (`{"roles": {"1": "active"}, "shutdown": "text"}`), polled every 50 ms. The
harness writes its status (neighbours, loop lag) as JSON to `--status` twice a second.

    python -m tests.lab.support.bgp_node --config node1.yaml --control c.json --status s.json
"""

from __future__ import annotations

import argparse
import json
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


async def follow_control(store: StateStore, speaker: BgpSpeaker, control: Path) -> None:
    shut = False
    while True:
        try:
            doc = json.loads(control.read_text())
        except (OSError, ValueError):
            doc = {}
        for group, role in doc.get("roles", {}).items():
            store.publish(role_key(int(group)), HaRole(role))
        if "shutdown" in doc and not shut:
            shut = True
            await speaker.shutdown(doc["shutdown"])
        await trio.sleep(0.05)


async def write_status(store: StateStore, status: Path) -> None:
    while True:
        doc = {
            "neighbors": to_jsonable(store.snapshot("bgp/neighbor/")),
            "loop_lag": to_jsonable(store.get(LOOP_LAG)),
            "intent": to_jsonable(store.snapshot("intent")),
        }
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(status)
        await trio.sleep(0.5)


async def main(args: argparse.Namespace) -> None:
    cfg = load_config(Path(args.config))
    assert cfg.bgp is not None
    store = StateStore()
    store.publish(RUNNING_CONFIG, cfg)
    speaker = BgpSpeaker(cfg.bgp, store)
    async with trio.open_nursery() as nursery:
        await nursery.start(LoopLagMonitor(store).run)
        await nursery.start(IntentController(store).run)
        await nursery.start(speaker.run)
        nursery.start_soon(follow_control, store, speaker, Path(args.control))
        nursery.start_soon(write_status, store, Path(args.status))
        print("bgp_node_ready", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--status", required=True)
    configure_logging("text", "info")
    trio.run(main, parser.parse_args())
