"""Configuration commits on a node carrying traffic (issue 8), end to end: scenario 3's lab,
node1's real daemon (eBPF dataplane, BGP speaker to the lab router's BIRD, health probes), the
client's long-lived echo streams through the VIP, commits by the CLI (`triolb config …`,
through the node's API with its token) and by SIGHUP.

* A commit adds a service on a new VIP (its route reaches BIRD, it answers), changes a
  service's endpoint weights (the spread of new connections follows), removes the new service
  (its route leaves BIRD, it no longer answers).
* Twenty successive commits while 20 echo streams of another service run: no stream is reset
  or loses a message, and the BGP session to BIRD never resets (BIRD's "since" unchanged,
  one establishment on node1's side).
* An invalid candidate is refused with every error (key path and line) and changes nothing.
* A confirmed commit that is not confirmed is undone when its time is up; a confirmed one stays.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.api import LabHandle
from tests.lab.support import dataplane as dp
from tests.lab.support.bird_configs import parse_routes, routes_via
from tests.lab.support.polling import holds_for, wait_for

pytestmark = pytest.mark.lab

EXAMPLE = dp.EXAMPLES / "scenario3-bgp-ecmp-node1.yaml"
VIP, NEW_VIP = dp.L3_VIP, "198.51.100.20"
PROBE_TIMING = {"interval_ms": 200, "timeout_ms": 150, "rise": 1, "fall": 2}
TOKEN = "lab-token-not-a-secret-elsewhere"
#: the BGP session and the first route: BIRD's connect retry, OPEN/KEEPALIVE, an UPDATE
ROUTE_UP_S = 40.0
#: a commit's effect seen from outside (BIRD's table, the client), on a busy 2-core machine
CHANGE_S = 20.0
STREAMS = 20
RELOADS = 20


class Node:
    """node1's daemon, its configuration file (the candidate) and the CLI that commits it."""

    def __init__(self, handle: LabHandle, workdir: Path) -> None:
        self.handle = handle
        self.token = workdir / "web.token"
        self.token.write_text(TOKEN + "\n")
        tree: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
        for service in tree["services"]:
            service["probe"] = {**service["probe"], **PROBE_TIMING}
        tree["web"]["token_file"] = str(self.token)
        self.base = tree
        self.path = workdir / "node1.yaml"
        self.write(tree)
        self.pid = dp.start_daemon(handle, self.path)

    def write(self, tree: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(tree, sort_keys=False))

    def tree(self) -> dict[str, Any]:
        return copy.deepcopy(self.base)

    def cli(self, *args: str) -> tuple[int, str]:
        """``triolb config …`` in node1's namespace: (exit code, output)."""
        argv = [sys.executable, "-m", "appliance", "config", *args]
        result = self.handle.exec("node1", argv, timeout=60)
        return result.returncode, result.stdout + result.stderr

    def commit(self, tree: dict[str, Any], *extra: str) -> str:
        self.write(tree)
        code, out = self.cli("commit", str(self.path), "--token-file", str(self.token), *extra)
        assert code == 0, out
        return out

    def sighup(self, tree: dict[str, Any]) -> None:
        """Commit by SIGHUP; return once the daemon logged the outcome."""
        self.write(tree)
        before = len(dp.events(self.handle))
        os.kill(self.pid, signal.SIGHUP)

        def done() -> bool:
            kinds = [e["event"] for e in dp.events(self.handle)[before:]]
            assert "reload_rejected" not in kinds, dp.events(self.handle)[before:]
            return "reload_applied" in kinds

        wait_for(done, "the SIGHUP commit", CHANGE_S)

    def show(self, *what: str) -> Any:
        argv = [sys.executable, "-m", "appliance", "show", "--json", *what]
        result = self.handle.exec("node1", argv, timeout=30)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def history(self) -> list[dict[str, Any]]:
        code, out = self.cli("history", "--json")
        assert code == 0, out
        commits: list[dict[str, Any]] = json.loads(out)["commits"]
        return commits


def with_new_service(tree: dict[str, Any]) -> dict[str, Any]:
    web = copy.deepcopy(tree["services"][0])
    tree["services"].append({**web, "name": "web2", "vip": NEW_VIP})
    return tree


def with_weights(tree: dict[str, Any], weights: tuple[int, int, int]) -> dict[str, Any]:
    web = tree["services"][0]
    web["selection"] = "weighted"
    for endpoint, weight in zip(web["endpoints"], weights, strict=True):
        endpoint["weight"] = weight
    return tree


def bird_route(handle: LabHandle, vip: str) -> list[Any]:
    """BIRD's routes for ``vip``/32 via node1."""
    try:
        text = handle.birdc(f"show route {vip}/32 all")
    except RuntimeError as exc:  # "Network not found": birdc exits non-zero
        if "Network not found" in str(exc):
            return []
        raise
    return routes_via([r for r in parse_routes(text) if r.prefix == f"{vip}/32"], dp.NODE1)


def wait_route(handle: LabHandle, vip: str, *, present: bool, timeout: float = CHANGE_S) -> None:
    state = "present" if present else "gone"
    wait_for(
        lambda: bool(bird_route(handle, vip)) == present,
        f"{vip}/32 via node1 {state} at BIRD",
        timeout,
        lambda: handle.birdc("show route all"),
    )


def bird_session(handle: LabHandle) -> tuple[str, str]:
    """(state, since) of BIRD's protocol for node1 (``show protocols``)."""
    for line in handle.birdc("show protocols").splitlines():
        fields = line.split()
        if fields and fields[0] == "node1":
            return fields[3], fields[4]
    raise AssertionError(handle.birdc("show protocols"))


def answers(handle: LabHandle, vip: str) -> bool:
    return all(r["ok"] for r in dp.http_gets(handle, vip, 80, 3))


def test_commits_change_only_what_they_name(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    handle = lab_factory("scenario3", start_endpoints=True)
    node = Node(handle, tmp_path)
    wait_route(handle, VIP, present=True, timeout=ROUTE_UP_S)
    wait_for(lambda: bird_session(handle)[0] == "up", "BIRD's session to node1 up", ROUTE_UP_S)
    session = bird_session(handle)
    streams = dp.Streams(handle, tmp_path, "streams", f"{VIP}:{dp.ECHO_PORT}", STREAMS)

    # a service added: its route reaches BIRD and it answers
    started = time.monotonic()
    out = node.commit(with_new_service(node.tree()), "--comment", "add web2")
    committed = time.monotonic()
    assert "+  - name: web2" in out and "committed: commit" in out
    wait_route(handle, NEW_VIP, present=True)
    wait_for(lambda: answers(handle, NEW_VIP), f"{NEW_VIP}:80 answers", CHANGE_S)
    print(  # a figure for the record (`pytest -s`), not a check: tests do not time things
        f"add web2: commit {committed - started:.2f} s, "
        f"answering {time.monotonic() - started:.2f} s after the CLI started"
    )

    # weights: the spread of new connections follows them
    node.commit(with_weights(with_new_service(node.tree()), (1, 1, 8)))
    spread = dp.names(dp.http_gets(handle, VIP, 80, 60))
    assert sum(spread.values()) == 60, spread
    assert spread["ep3"] > spread["ep1"] + spread["ep2"], spread

    # the new service removed: its route leaves BIRD, it no longer answers
    node.commit(with_weights(node.tree(), (1, 1, 8)))
    wait_route(handle, NEW_VIP, present=False)
    assert not any(r["ok"] for r in dp.http_gets(handle, NEW_VIP, 80, 2))
    assert bird_route(handle, VIP)  # the other VIP's route never moved

    # twenty more commits, by the CLI and by SIGHUP, while the echo streams run
    for i in range(RELOADS):
        tree = with_weights(node.tree(), (1 + i % 3, 1, 1 + i % 5))
        if i % 2:
            node.sighup(tree)
        else:
            node.commit(tree, "--comment", f"weights {i}")
    streams.advance(3, "the streams to keep echoing after the commits")
    report = streams.stop()
    assert report["failed"] == [], report["failed"]
    assert all(s["echoed"] == s["sent"] > 0 for s in report["streams"]), report["streams"]
    assert bird_session(handle) == session  # never reset at the router
    (neighbor,) = node.show("bgp", "neighbors")["neighbors"]
    assert neighbor["established_count"] == 1, neighbor

    # diff: the candidate's change alone; rollback 1: the configuration before the last change
    node.write(with_weights(node.tree(), (5, 5, 5)))
    code, out = node.cli("diff", str(node.path))
    assert code == 0 and "+        weight: 5" in out and "name: web2" not in out, out
    code, out = node.cli("rollback", "1", "--token-file", str(node.token))
    assert code == 0 and "rolled back: commit" in out, out
    latest, undone, restored = node.history()[:3]
    assert latest["comment"] == f"rollback 1 (to commit {restored['id']})", latest
    code, out = node.cli("history")
    assert code == 0 and f"rollback 1 (to commit {restored['id']})" in out, out

    # an invalid candidate: every error with its key path and line, nothing applied
    before = node.history()[0]["id"]
    broken = node.tree()
    broken["services"][1]["port"] = 70000
    broken["surprise"] = True
    node.write(broken)
    code, out = node.cli("commit", str(node.path), "--token-file", str(node.token))
    assert code != 0
    assert "services[1].port (line" in out and "surprise (line" in out, out
    assert node.history()[0]["id"] == before
    assert answers(handle, VIP)

    # a commit the dataplane cannot apply (66 endpoints, 64 at most): the previous
    # configuration comes back, the commit says what failed (no probe: nothing is sent to
    # the extra ports)
    too_big = node.tree()
    too_big["services"].append(
        {
            "name": "big",
            "vip": NEW_VIP,
            "port": 80,
            "mode": "onearm",
            "endpoints": [
                {"address": f"192.168.80.10{1 + i % 3}", "port": 20000 + i} for i in range(66)
            ],
        }
    )
    node.write(too_big)
    code, out = node.cli("commit", str(node.path), "--token-file", str(node.token))
    assert code != 0 and "at most 64" in out and "restored" in out, out
    failed = node.history()[0]
    assert failed["outcome"] == "failed" and "at most 64" in failed["error"], failed
    assert not bird_route(handle, NEW_VIP) and answers(handle, VIP)

    # a confirmed commit not confirmed in time is undone; a confirmed one stays
    node.commit(with_new_service(node.tree()), "--confirmed", "3")
    wait_route(handle, NEW_VIP, present=True)
    wait_route(handle, NEW_VIP, present=False)  # the timeout rolled it back
    undo, undone = node.history()[:2]
    assert (undo["origin"], undone["outcome"]) == ("confirm-timeout", "rolled-back"), (undo, undone)
    node.commit(with_new_service(node.tree()), "--confirmed", "3")
    code, out = node.cli("confirm", "--token-file", str(node.token))
    assert code == 0, out
    holds_for(lambda: bool(bird_route(handle, NEW_VIP)), "the confirmed commit stays", 6.0)
    assert node.history()[0]["outcome"] == "confirmed"
