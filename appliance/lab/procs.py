"""Processes inside lab namespaces: start (own process group, log file), stop, find, run bounded.

Every command runs through ``ip netns exec <ns>``, which execs the target, so the pid we get is
the pid of the command itself. Processes are identified by pid *and* start time (clock ticks from
``/proc/<pid>/stat``) so that a reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from appliance.lab.state import NAMESPACE_RE, ProcessRecord

NETNS_RUN_DIR = Path("/run/netns")
LAB_BPF_ROOT = Path("/sys/fs/bpf/triolb-lab")
STOP_TIMEOUT = 3.0
KILL_TIMEOUT = 2.0

# Children started by this process, kept so that they can be reaped (no zombies).
_children: dict[int, subprocess.Popen[bytes]] = {}


def check_namespace(ns: str) -> str:
    """Refuse anything that is not a lab namespace name: no command may run in the root ns."""
    if not NAMESPACE_RE.match(ns):
        raise ValueError(f"refusing to use non-lab namespace {ns!r}")
    return ns


def netns_command(ns: str, argv: Sequence[str], share_mounts: bool = False) -> list[str]:
    """Command line running ``argv`` in lab namespace ``ns``.

    Default ``ip netns exec``: a private mount namespace with a fresh ``/sys`` (so
    ``/sys/class/net`` shows the lab namespace's interfaces; no bpffs/tracefs there).
    ``share_mounts``: ``nsenter --net`` keeps the host's mounts (e.g. a shared ``/sys/fs/bpf``
    for pinned maps that outlive the process) but ``/sys/class/net`` then shows the host's.
    """
    if share_mounts:
        return ["nsenter", f"--net={NETNS_RUN_DIR / check_namespace(ns)}", "--", *argv]
    return ["ip", "netns", "exec", check_namespace(ns), *argv]


def bpf_root(ns: str) -> Path:
    """Where a lab's daemons pin their BPF maps: one directory per lab (bpffs is shared by all
    namespaces), removed with the lab."""
    return LAB_BPF_ROOT / ns.rsplit("-", 1)[0]


def lab_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for lab processes: this checkout importable, unbuffered Python output."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != root]]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def pid_start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    if pid <= 0:
        return False
    _reap(pid)
    ticks = pid_start_ticks(pid)
    if ticks is None:
        return False
    return start_ticks is None or start_ticks == 0 or ticks == start_ticks


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def start_process(
    ns: str,
    host: str,
    name: str,
    argv: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None = None,
    share_mounts: bool = False,
) -> ProcessRecord:
    """Start ``argv`` inside ``ns`` in its own session; stdout and stderr go to ``log_path``."""
    cmd = netns_command(ns, argv, share_mounts)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"# {time.strftime('%H:%M:%S')} start in {ns}: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # the daemon's runtime files stay in the lab's directory, removed with the lab
            env=lab_env(
                {
                    "TRIOLB_RUN_DIR": str(log_path.parent / "run"),
                    "TRIOLB_STATE_DIR": str(log_path.parent / "state"),
                    "TRIOLB_BPF_ROOT": str(bpf_root(ns)),
                    **(env or {}),
                }
            ),
            close_fds=True,
        )
    _children[proc.pid] = proc
    ticks = pid_start_ticks(proc.pid) or 0
    return ProcessRecord(name, host, proc.pid, ticks, list(argv), str(log_path))


def _signal_group(pid: int, start_ticks: int, sig: signal.Signals) -> None:
    if not pid_alive(pid, start_ticks):
        return
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(targets: list[tuple[int, int]], timeout: float) -> list[tuple[int, int]]:
    deadline = time.monotonic() + timeout
    remaining = [t for t in targets if pid_alive(*t)]
    while remaining and time.monotonic() < deadline:
        time.sleep(0.02)
        remaining = [t for t in remaining if pid_alive(*t)]
    return remaining


def stop_pids(targets: Iterable[tuple[int, int]], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM the process groups of ``(pid, start_ticks)``, SIGKILL whatever is left after
    ``timeout``. Returns the pids that were alive at the start."""
    alive = [t for t in targets if pid_alive(*t)]
    for pid, ticks in alive:
        _signal_group(pid, ticks, signal.SIGTERM)
    remaining = _wait_gone(alive, timeout)
    for pid, ticks in remaining:
        _signal_group(pid, ticks, signal.SIGKILL)
    still = _wait_gone(remaining, KILL_TIMEOUT)
    if still:
        raise RuntimeError(f"processes survived SIGKILL: {[pid for pid, _ in still]}")
    return [pid for pid, _ in alive]


def stop_processes(records: Iterable[ProcessRecord], timeout: float = STOP_TIMEOUT) -> list[int]:
    return stop_pids(((r.pid, r.start_ticks) for r in records), timeout)


def pids_in_namespace(ns: str) -> list[int]:
    """Pids of every process whose network namespace is the named lab namespace."""
    try:
        target = os.stat(NETNS_RUN_DIR / check_namespace(ns))
    except FileNotFoundError:
        return []
    me = os.getpid()
    found: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry.name}/ns/net")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            found.append(int(entry.name))
    return found


def kill_namespace_processes(ns: str, timeout: float = STOP_TIMEOUT) -> list[int]:
    """Stop every process still running inside ``ns`` (e.g. children of an aborted command)."""
    targets = [(pid, pid_start_ticks(pid) or 0) for pid in pids_in_namespace(ns)]
    alive = [t for t in targets if t[1]]
    for pid, ticks in alive:
        if pid_alive(pid, ticks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    remaining = _wait_gone(alive, timeout)
    for pid, ticks in remaining:
        if pid_alive(pid, ticks):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    _wait_gone(remaining, KILL_TIMEOUT)
    return [pid for pid, _ in alive]


def run_in_namespace(
    ns: str,
    argv: Sequence[str],
    timeout: float,
    *,
    check: bool = False,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``ns`` and wait at most ``timeout`` seconds; on timeout its whole
    process group is killed and :class:`subprocess.TimeoutExpired` raised."""
    if not 0 < timeout <= 3600:
        raise ValueError("timeout must be in (0, 3600] seconds")
    cmd = netns_command(ns, argv)
    with subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=lab_env(env),
    ) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=KILL_TIMEOUT)
            raise
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result
