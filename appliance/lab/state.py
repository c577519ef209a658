"""On-disk record of a running lab: ``/run/triolb-lab/<prefix>.json`` plus a log directory.

The state file is created (exclusively, which claims the prefix) before anything else of the lab
exists and removed only after everything else is gone, so status, ``lab down`` and the stale
cleanup of a later run can always find what a lab left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

STATE_DIR = Path(os.environ.get("TRIOLB_LAB_STATE_DIR", "/run/triolb-lab"))
PREFIX_RE = re.compile(r"^tlb[0-9a-f]{4}$")
NAMESPACE_RE = re.compile(r"^(tlb[0-9a-f]{4})-[a-z][a-z0-9]*$")
SWITCH_HOST = "sw"
LOCK_TIMEOUT = 60.0


def check_prefix(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise ValueError(f"not a lab prefix: {prefix!r} (want tlb + 4 hex digits)")
    return prefix


def namespace_name(prefix: str, host: str) -> str:
    """``tlb3fa2`` + ``node1`` -> ``tlb3fa2-node1``."""
    name = f"{check_prefix(prefix)}-{host}"
    if not NAMESPACE_RE.match(name):
        raise ValueError(f"invalid lab namespace name {name!r}")
    return name


def prefix_of_namespace(name: str) -> str | None:
    match = NAMESPACE_RE.match(name)
    return match.group(1) if match else None


def state_path(prefix: str) -> Path:
    return STATE_DIR / f"{check_prefix(prefix)}.json"


def log_dir(prefix: str) -> Path:
    return STATE_DIR / check_prefix(prefix)


@attrs.define
class ProcessRecord:
    """A process started inside a lab namespace (its own process group, pgid == pid)."""

    name: str
    host: str
    pid: int
    start_ticks: int
    argv: list[str]
    log: str

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            start_ticks=int(data["start_ticks"]),
            argv=[str(a) for a in data["argv"]],
            log=str(data["log"]),
        )


@attrs.define
class LabState:
    prefix: str
    scenario: str
    owner_pid: int
    owner_start_ticks: int
    created: float
    namespaces: dict[str, str] = attrs.Factory(dict)
    processes: list[ProcessRecord] = attrs.Factory(list)
    bird_socket: str | None = None
    #: Kept after the owner exits (``triolb lab up``); removed only by ``lab down``.
    persistent: bool = False

    @property
    def log_dir(self) -> Path:
        return log_dir(self.prefix)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "scenario": self.scenario,
            "owner_pid": self.owner_pid,
            "owner_start_ticks": self.owner_start_ticks,
            "created": self.created,
            "log_dir": str(self.log_dir),
            "namespaces": dict(self.namespaces),
            "processes": [p.to_json() for p in self.processes],
            "bird_socket": self.bird_socket,
            "persistent": self.persistent,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        bird_socket = data.get("bird_socket")
        return cls(
            prefix=check_prefix(str(data["prefix"])),
            scenario=str(data["scenario"]),
            owner_pid=int(data["owner_pid"]),
            owner_start_ticks=int(data.get("owner_start_ticks", 0)),
            created=float(data.get("created", 0.0)),
            namespaces={str(k): str(v) for k, v in dict(data.get("namespaces", {})).items()},
            processes=[ProcessRecord.from_json(p) for p in data.get("processes", [])],
            bird_socket=None if bird_socket is None else str(bird_socket),
            persistent=bool(data.get("persistent", False)),
        )


def save_state(state: LabState) -> None:
    """Atomically replace the state file."""
    path = state_path(state.prefix)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def load_state(prefix: str) -> LabState | None:
    try:
        data = json.loads(state_path(prefix).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # Unreadable or half-written: keep the prefix so cleanup still finds its namespaces.
        return LabState(prefix=prefix, scenario="?", owner_pid=0, owner_start_ticks=0, created=0)
    return LabState.from_json(data)


def list_state_prefixes() -> list[str]:
    if not STATE_DIR.is_dir():
        return []
    return sorted(
        p.stem for p in STATE_DIR.glob("tlb*.json") if PREFIX_RE.match(p.stem) and p.is_file()
    )


def claim_prefix(
    scenario: str,
    owner_pid: int,
    owner_start_ticks: int,
    taken: set[str],
    persistent: bool = False,
) -> LabState:
    """Pick a fresh ``tlb<4 hex>`` prefix and create its state file exclusively."""
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    for _attempt in range(64):
        prefix = f"tlb{secrets.token_hex(2)}"
        if prefix in taken:
            continue
        state = LabState(prefix, scenario, owner_pid, owner_start_ticks, time.time())
        state.persistent = persistent
        # Write the content first, then link it into place: the link fails if the prefix is
        # taken, and no reader ever sees an empty state file.
        path = state_path(prefix)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.claim")
        tmp.write_text(json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            continue
        finally:
            tmp.unlink()
        log_dir(prefix).mkdir(mode=0o755, exist_ok=True)
        return state
    raise RuntimeError("could not find a free lab prefix")


def remove_state(prefix: str) -> None:
    shutil.rmtree(log_dir(prefix), ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        state_path(prefix).unlink()


_lock_depth = 0


@contextlib.contextmanager
def state_lock() -> Iterator[None]:
    """Serialise cleanups between processes (exclusive flock on the state directory).

    Re-entrant within a process, so that a signal handler tearing labs down while the main
    code holds the lock does not deadlock on itself.
    """
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    STATE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd = os.open(STATE_DIR / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{STATE_DIR}/.lock held for {LOCK_TIMEOUT}s") from None
                time.sleep(0.05)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
    finally:
        os.close(fd)
