"""Finding, tearing down and cleaning up labs from their state files.

A lab is *stale* when its owner process (pid + start time in the state file) is gone: the
owner was SIGKILLed or crashed before its atexit/signal cleanup could run. Persistent labs
(``triolb lab up``) are never stale; only ``lab down`` removes them. Namespaces that carry
a lab prefix but have no state file at all are orphans (the state file is written before any
namespace exists and removed after the last one is gone, so such a namespace has no owner).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from appliance.lab import netbuild, procs
from appliance.lab.state import (
    LabState,
    check_prefix,
    list_state_prefixes,
    load_state,
    prefix_of_namespace,
    remove_state,
    state_lock,
)


def owner_alive(state: LabState) -> bool:
    return procs.pid_alive(state.owner_pid, state.owner_start_ticks)


def is_stale(state: LabState) -> bool:
    """A non-persistent lab whose owner process is gone."""
    return not state.persistent and not owner_alive(state)


def _namespaces_by_prefix() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for ns in netbuild.lab_namespaces():
        prefix = prefix_of_namespace(ns)
        if prefix is not None:
            found.setdefault(prefix, []).append(ns)
    return found


def teardown_lab(prefix: str, state: LabState | None) -> list[str]:
    """Stop the lab's processes, remove its namespaces, then its state file and logs.

    Best effort on every step; the first error is re-raised at the end and the state file is
    kept if a namespace could not be removed (so that a later cleanup retries).
    Returns the namespaces removed. Idempotent; tolerates a half-built lab.
    """
    check_prefix(prefix)
    errors: list[Exception] = []
    if state is not None:
        try:
            procs.stop_processes(state.processes)
        except Exception as exc:
            errors.append(exc)
    namespaces = set(state.namespaces.values()) if state is not None else set()
    namespaces.update(_namespaces_by_prefix().get(prefix, []))
    removed: list[str] = []
    # Host namespaces first, the switch namespace (holding the bridges) last.
    for ns in sorted(namespaces, key=lambda ns: (ns.endswith("-sw"), ns)):
        try:
            removed += netbuild.teardown_namespaces([ns])
        except Exception as exc:
            errors.append(exc)
    try:
        remove_pins(procs.LAB_BPF_ROOT / prefix)
    except OSError as exc:
        errors.append(exc)
    if not _namespaces_by_prefix().get(prefix):
        remove_state(prefix)
    if errors:
        raise errors[0]
    return removed


def remove_pins(root: Path) -> None:
    """Remove a lab's pinned BPF objects (files on bpffs) and their directories."""
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            path.rmdir()
        else:
            path.unlink()
    root.rmdir()


def clean_stale() -> list[str]:
    """Remove every lab whose owner is dead and every orphan lab namespace.

    A lab that cannot be removed is reported with a warning and left for the next attempt.
    Returns the prefixes of the labs removed.
    """
    removed: list[str] = []
    with state_lock():
        # Namespaces first, then state files: a namespace seen here already had its state file.
        by_prefix = _namespaces_by_prefix()
        with_state = set(list_state_prefixes())
        stale: list[tuple[str, LabState | None]] = []
        for prefix in sorted(with_state):
            state = load_state(prefix)
            if state is not None and is_stale(state):
                stale.append((prefix, state))
        stale += [(prefix, None) for prefix in sorted(set(by_prefix) - with_state)]
        for prefix, state in stale:
            try:
                teardown_lab(prefix, state)
            except Exception as exc:
                warnings.warn(f"could not remove stale lab {prefix}: {exc}", stacklevel=2)
                continue
            removed.append(prefix)
    return removed


def lab_down(prefix: str | None = None) -> list[str]:
    """Remove the lab ``prefix`` (whoever owns it), or every lab when ``prefix`` is None.

    Every lab is attempted; the first error is re-raised afterwards.
    Returns the prefixes removed.
    """
    removed: list[str] = []
    errors: list[Exception] = []
    with state_lock():
        prefixes = set(_namespaces_by_prefix()) | set(list_state_prefixes())
        if prefix is not None:
            prefixes &= {check_prefix(prefix)}
        for name in sorted(prefixes):
            forget(name)
            try:
                teardown_lab(name, load_state(name))
            except Exception as exc:
                errors.append(exc)
                continue
            removed.append(name)
    if errors:
        raise errors[0]
    return removed


def lab_status() -> list[dict[str, Any]]:
    """One dict per lab known from state files or namespaces (stale ones flagged)."""
    existing = _namespaces_by_prefix()
    out: list[dict[str, Any]] = []
    for prefix in sorted(set(existing) | set(list_state_prefixes())):
        state = load_state(prefix)
        present = set(existing.get(prefix, []))
        if state is None:
            out.append(
                {
                    "prefix": prefix,
                    "scenario": None,
                    "owner_pid": None,
                    "owner_alive": False,
                    "stale": True,
                    "persistent": False,
                    "namespaces": {ns: True for ns in sorted(present)},
                    "processes": [],
                    "log_dir": None,
                    "bird_socket": None,
                }
            )
            continue
        alive = owner_alive(state)
        namespaces = state.namespaces
        out.append(
            {
                "prefix": prefix,
                "scenario": state.scenario,
                "owner_pid": state.owner_pid,
                "owner_alive": alive,
                "stale": is_stale(state),
                "persistent": state.persistent,
                "created": state.created,
                "namespaces": {ns: ns in present for ns in state.namespaces.values()},
                "processes": [
                    {
                        "name": p.name,
                        "host": p.host,
                        "ns": namespaces.get(p.host),
                        "pid": p.pid,
                        "alive": procs.pid_alive(p.pid, p.start_ticks),
                        "log": p.log,
                    }
                    for p in state.processes
                ],
                "log_dir": str(state.log_dir),
                "bird_socket": state.bird_socket,
            }
        )
    return out


# --- cleanup of this process's labs at exit and on fatal signals --------------------------------

_live: dict[str, Callable[[], object]] = {}
_hooks_installed = False
_hooks_pid = 0  # the process that registered the labs; forked children must not tear down


def remember(prefix: str, down: Callable[[], object]) -> None:
    """Register ``down`` to run at interpreter exit and on SIGTERM/SIGHUP."""
    _live[prefix] = down
    _install_hooks()


def forget(prefix: str) -> None:
    _live.pop(prefix, None)


def down_all_live() -> None:
    if os.getpid() != _hooks_pid:
        return  # a forked child (pyroute2 helpers, multiprocessing) inherited the registry
    for prefix, down in list(_live.items()):
        with contextlib.suppress(Exception):
            down()
        _live.pop(prefix, None)


def _on_exit() -> None:
    down_all_live()


def _on_fatal_signal(signum: int, _frame: FrameType | None) -> None:
    down_all_live()  # no-op in forked children, which inherit this handler
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed, _hooks_pid
    if _hooks_installed and _hooks_pid == os.getpid():
        return
    _hooks_installed = True
    _hooks_pid = os.getpid()
    atexit.register(_on_exit)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        # Respect handlers somebody else installed (the demo, the CLI, a test runner).
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _on_fatal_signal)
