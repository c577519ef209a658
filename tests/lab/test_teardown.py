"""Nothing of a lab survives: down(), lab_down(), a killed owner (clean_stale), orphans, signals."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from appliance.lab import netbuild, procs
from appliance.lab import state as state_module
from appliance.lab.api import LabHandle, clean_stale, lab_down, lab_status
from appliance.lab.procs import pid_alive
from appliance.lab.state import LabState, list_state_prefixes, log_dir, state_path

pytestmark = pytest.mark.lab

OWNER_TIMEOUT = 20.0


def netns_with_prefix(prefix: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listed.stdout.splitlines() if line.startswith(prefix)]


def assert_gone(prefix: str, pids: list[int]) -> None:
    assert netns_with_prefix(prefix) == []
    assert not state_path(prefix).exists()
    assert not log_dir(prefix).exists()
    assert prefix not in list_state_prefixes()
    assert not any(pid_alive(pid) for pid in pids)


def test_down_removes_everything(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario2")
    pids = [p.pid for p in handle.processes]
    assert len(pids) == 4  # ep1..ep3 servers and BIRD
    assert len(netns_with_prefix(handle.prefix)) == 8
    assert state_path(handle.prefix).exists()
    status = {lab["prefix"]: lab for lab in lab_status()}[handle.prefix]
    assert status["owner_pid"] == os.getpid() and not status["stale"]
    assert all(p["alive"] for p in status["processes"])
    removed = handle.down()
    assert len(removed) == 8
    assert_gone(handle.prefix, pids)
    assert handle.down() == []  # idempotent


def test_lab_down_removes_a_lab(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario1")
    pids = [p.pid for p in handle.processes]
    assert lab_down(handle.prefix) == [handle.prefix]
    assert_gone(handle.prefix, pids)
    assert lab_down(handle.prefix) == []


def _start_owner(*lines: str) -> subprocess.Popen[str]:
    code = "\n".join(
        [
            "import json, os, sys, time",
            "from appliance.lab.api import lab_up",
            *lines,
        ]
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )


def _read_owner_report(owner: subprocess.Popen[str]) -> dict[str, object]:
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line, "lab owner printed nothing"
    report: dict[str, object] = json.loads(line)
    return report


@pytest.fixture
def owner_cleanup() -> Iterator[list[str]]:
    prefixes: list[str] = []
    yield prefixes
    for prefix in prefixes:
        lab_down(prefix)


UP_AND_REPORT = (
    "h = lab_up({scenario!r}, start_router=False{extra})",
    "print(json.dumps({{'prefix': h.prefix, 'pids': [p.pid for p in h.processes]}}), flush=True)",
)


def _owner_script(scenario: str, extra: str = "", then: str = "time.sleep(30)") -> list[str]:
    return [line.format(scenario=scenario, extra=extra) for line in UP_AND_REPORT] + [then]


def test_killed_owner_is_cleaned_by_clean_stale(owner_cleanup: list[str]) -> None:
    owner = _start_owner(*_owner_script("scenario1"))
    report = _read_owner_report(owner)
    prefix = str(report["prefix"])
    pids = [int(p) for p in report["pids"]]  # type: ignore[attr-defined]
    owner_cleanup.append(prefix)
    owner.kill()  # SIGKILL: no atexit, no signal handler
    owner.wait(OWNER_TIMEOUT)
    assert len(netns_with_prefix(prefix)) == 7
    assert all(pid_alive(pid) for pid in pids)  # endpoint servers outlive their owner
    status = {lab["prefix"]: lab for lab in lab_status()}[prefix]
    assert status["stale"]
    assert prefix in clean_stale()
    assert_gone(prefix, pids)


def test_sigterm_to_owner_tears_its_lab_down(owner_cleanup: list[str]) -> None:
    owner = _start_owner(*_owner_script("scenario1"))
    report = _read_owner_report(owner)
    prefix = str(report["prefix"])
    owner_cleanup.append(prefix)
    owner.send_signal(signal.SIGTERM)
    assert owner.wait(OWNER_TIMEOUT) == -signal.SIGTERM
    assert_gone(prefix, [int(p) for p in report["pids"]])  # type: ignore[attr-defined]


def test_exit_without_down_tears_lab_down(owner_cleanup: list[str]) -> None:
    owner = _start_owner(*_owner_script("scenario3", then="sys.exit(0)"))
    report = _read_owner_report(owner)
    prefix = str(report["prefix"])
    owner_cleanup.append(prefix)
    assert owner.wait(OWNER_TIMEOUT) == 0
    assert_gone(prefix, [int(p) for p in report["pids"]])  # type: ignore[attr-defined]


def test_persistent_lab_survives_owner_until_lab_down(owner_cleanup: list[str]) -> None:
    owner = _start_owner(*_owner_script("scenario1", ", persistent=True", then="sys.exit(0)"))
    report = _read_owner_report(owner)
    prefix = str(report["prefix"])
    owner_cleanup.append(prefix)
    assert owner.wait(OWNER_TIMEOUT) == 0
    assert len(netns_with_prefix(prefix)) == 7
    assert prefix not in clean_stale()
    status = {lab["prefix"]: lab for lab in lab_status()}[prefix]
    assert status["persistent"] and not status["stale"]
    assert lab_down(prefix) == [prefix]
    assert_gone(prefix, [int(p) for p in report["pids"]])  # type: ignore[attr-defined]


def test_orphan_namespace_without_state_is_cleaned() -> None:
    taken = {lab["prefix"] for lab in lab_status()}
    prefix = next(p for p in (f"tlb{secrets.token_hex(2)}" for _ in range(100)) if p not in taken)
    ns = f"{prefix}-orphan"
    netbuild.create_namespace(ns)
    try:
        sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "30"])
        deadline = time.monotonic() + 5
        while sleeper.pid not in procs.pids_in_namespace(ns):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert prefix in clean_stale()
        assert sleeper.wait(5) != 0  # killed by the cleanup
        assert netns_with_prefix(prefix) == []
    finally:
        netbuild.teardown_namespaces([ns])


def test_failed_build_leaves_nothing(
    lab_factory: Callable[..., LabHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    claimed: list[str] = []
    real_claim = state_module.claim_prefix

    def recording_claim(*args: Any, **kwargs: Any) -> LabState:
        state = real_claim(*args, **kwargs)
        claimed.append(state.prefix)
        return state

    def broken(*_args: object, **_kwargs: object) -> None:
        assert len(netns_with_prefix(claimed[0])) == 8  # built, then the failure
        raise RuntimeError("simulated failure while starting endpoints")

    monkeypatch.setattr("appliance.lab.api.claim_prefix", recording_claim)
    monkeypatch.setattr("appliance.lab.api._start_endpoints", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        lab_factory("scenario2")
    assert len(claimed) == 1
    assert_gone(claimed[0], [])
