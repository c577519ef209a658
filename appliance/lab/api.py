"""Lab API used by the CLI, the demo and the tests.

    handle = lab_up("scenario2")           # namespaces, endpoints ep1..ep3, BIRD in the router
    handle.exec("client", ["curl", "-s", "http://192.168.80.101:8080/"], timeout=5)
    pid = handle.spawn("node1", "daemon", [sys.executable, "-m", "appliance", "run", ...])
    handle.birdc("show protocols")
    handle.down()

Everything a lab creates is recorded in its state file before it is created, removed by
``down()``, at interpreter exit, on SIGTERM/SIGHUP, by ``lab_down()``, and — for a lab whose
owner was killed — by ``clean_stale()`` at the next ``lab_up()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from appliance.lab import bird, lifecycle, netbuild, procs
from appliance.lab.lifecycle import clean_stale, lab_down, lab_status
from appliance.lab.scenarios import (
    ENDPOINT_ECHO_PORT,
    ENDPOINT_HTTP_PORT,
    canonical_scenario,
    is_routed,
    scenario_topology,
)
from appliance.lab.state import (
    LabState,
    ProcessRecord,
    claim_prefix,
    load_state,
    save_state,
    state_lock,
    state_path,
)
from appliance.lab.topology import HostRole, Topology

__all__ = ["LabHandle", "clean_stale", "lab_down", "lab_status", "lab_up"]

READY_TIMEOUT = 15.0
DEFAULT_EXEC_TIMEOUT = 30.0
DEFAULT_ENDPOINT_SECONDS = 86400.0


class LabHandle:
    """A running lab. Obtained from :func:`lab_up` (owner) or :meth:`attach` (any process)."""

    def __init__(self, state: LabState) -> None:
        self._state = state
        self.topology: Topology = scenario_topology(state.scenario)
        self._down = False

    @classmethod
    def attach(cls, prefix: str) -> LabHandle:
        state = load_state(prefix)
        if state is None:
            raise LookupError(f"no lab {prefix}")
        return cls(state)

    # --- identity ---------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        return self._state.prefix

    @property
    def scenario(self) -> str:
        return self._state.scenario

    @property
    def state(self) -> LabState:
        return self._state

    @property
    def log_dir(self) -> Path:
        return self._state.log_dir

    @property
    def processes(self) -> list[ProcessRecord]:
        return list(self._state.processes)

    def ns(self, host: str) -> str:
        """Namespace name of ``host`` (``"sw"`` for the switch namespace)."""
        try:
            return self._state.namespaces[host]
        except KeyError:
            raise KeyError(f"lab {self.prefix} has no host {host!r}") from None

    def address(self, host: str, ifname: str = "eth0") -> str:
        return self.topology.address_of(host, ifname)

    # --- commands and processes -------------------------------------------------------------

    def exec(
        self,
        host: str,
        argv: Sequence[str],
        timeout: float = DEFAULT_EXEC_TIMEOUT,
        *,
        check: bool = False,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside ``host``'s namespace, at most ``timeout`` seconds."""
        return procs.run_in_namespace(self.ns(host), argv, timeout, check=check, input=input)

    def spawn(
        self,
        host: str,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        share_mounts: bool = False,
    ) -> int:
        """Start a background process in ``host`` (log: ``<log_dir>/<name>.log``); returns pid.

        See :func:`appliance.lab.procs.netns_command` for ``share_mounts``."""
        if any(p.name == name for p in self._state.processes):
            raise ValueError(f"a process named {name!r} already exists in lab {self.prefix}")
        log = self.log_dir / f"{name}.log"
        record = procs.start_process(self.ns(host), host, name, argv, log, env, share_mounts)
        self._state.processes.append(record)
        save_state(self._state)
        return record.pid

    def process(self, name: str) -> ProcessRecord:
        for record in self._state.processes:
            if record.name == name:
                return record
        raise KeyError(name)

    def alive(self, name: str) -> bool:
        record = self.process(name)
        return procs.pid_alive(record.pid, record.start_ticks)

    def stop(self, name: str, timeout: float = procs.STOP_TIMEOUT) -> None:
        """SIGTERM (then SIGKILL after ``timeout``) a spawned process and forget it."""
        record = self.process(name)
        procs.stop_processes([record], timeout)
        self._state.processes.remove(record)
        save_state(self._state)

    def log_path(self, name: str) -> Path:
        return Path(self.process(name).log)

    def log_tail(self, name: str, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path(name).read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def wait_for_log(self, name: str, needle: str, timeout: float = READY_TIMEOUT) -> None:
        """Wait until ``needle`` appears in the process's log; raise if it dies or times out."""
        record = self.process(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_tail(name, 200):
                return
            if not procs.pid_alive(record.pid, record.start_ticks):
                raise RuntimeError(f"{name} exited in lab {self.prefix}:\n{self.log_tail(name)}")
            time.sleep(0.02)
        raise TimeoutError(f"{name} not ready after {timeout}s:\n{self.log_tail(name)}")

    def birdc(self, command: str, timeout: float = bird.BIRDC_TIMEOUT) -> str:
        if self._state.bird_socket is None:
            raise RuntimeError(f"lab {self.prefix} runs no BIRD")
        return bird.birdc_in(self.ns("router"), self._state.bird_socket, command, timeout)

    # --- teardown ---------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Remove everything of this lab. Idempotent. Returns the namespaces removed."""
        if self._down:
            return []
        self._down = True
        lifecycle.forget(self.prefix)
        try:
            with state_lock():
                return lifecycle.teardown_lab(self.prefix, self._state)
        except BaseException:
            self._down = False  # let a retry, atexit or a signal finish the job
            lifecycle.remember(self.prefix, self.down)
            raise

    def __enter__(self) -> LabHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"<LabHandle {self.prefix} {self.scenario}{' down' if self._down else ''}>"


def _start_endpoints(handle: LabHandle, seconds: float) -> None:
    endpoints = handle.topology.hosts_with_role(HostRole.ENDPOINT)
    for host in endpoints:
        argv = procs.python_module_argv(
            "appliance.lab.traffic.endpoint_server",
            f"--name={host.name}",
            f"--http-port={ENDPOINT_HTTP_PORT}",
            f"--echo-port={ENDPOINT_ECHO_PORT}",
            f"--duration={seconds}",
        )
        handle.spawn(host.name, f"{host.name}-server", argv)
    for host in endpoints:
        handle.wait_for_log(f"{host.name}-server", "listening")


def _start_bird(handle: LabHandle) -> None:
    record, socket = bird.start_bird(handle.ns("router"), handle.topology, handle.log_dir)
    handle.state.processes.append(record)
    handle.state.bird_socket = socket
    save_state(handle.state)


def lab_up(
    scenario: str,
    *,
    start_endpoints: bool = True,
    start_router: bool = True,
    endpoint_seconds: float = DEFAULT_ENDPOINT_SECONDS,
    persistent: bool = False,
) -> LabHandle:
    """Build the scenario's lab: namespaces, links, addresses, routes, sysctls; endpoint servers
    ``ep1..ep3`` (HTTP 8080 answering their name, echo 9000); BIRD in the router of the L3
    scenarios. Cleans stale labs first. On any failure the partial lab is removed again.

    A ``persistent`` lab outlives this process (``triolb lab up``): it is not removed at exit
    and never counted as stale; ``lab_down()`` removes it."""
    name = canonical_scenario(scenario)
    if os.geteuid() != 0:
        raise PermissionError("the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
    clean_stale()
    topology = scenario_topology(name)
    me = os.getpid()
    taken = {s["prefix"] for s in lab_status()}
    state = claim_prefix(name, me, procs.pid_start_ticks(me) or 0, taken, persistent)
    handle = LabHandle(state)
    lifecycle.remember(state.prefix, handle.down)
    try:
        # Record every namespace before it exists, so a crash mid-build leaves nothing unknown.
        state.namespaces = netbuild.planned_namespaces(state.prefix, topology)
        save_state(state)
        netbuild.build_topology(state.prefix, topology)
        if start_endpoints:
            _start_endpoints(handle, endpoint_seconds)
        if start_router and is_routed(name):
            _start_bird(handle)
    except BaseException:
        handle.down()
        raise
    if persistent:
        lifecycle.forget(state.prefix)
    return handle


def lab_summary(handle: LabHandle) -> str:
    """Human-readable description: namespaces, addresses, processes, logs, example commands."""
    lines = [f"lab {handle.prefix} ({handle.scenario}), state {state_path(handle.prefix)}"]
    for host in handle.topology.hosts:
        addrs = ", ".join(
            f"{link.ifname}={link.address}" for link in handle.topology.links_of(host.name)
        )
        lines.append(f"  {host.name:<7} {handle.ns(host.name):<16} {host.role.value:<8} {addrs}")
    lines.append(
        f"  {'sw':<7} {handle.ns('sw'):<16} switch   bridges: "
        + ", ".join(s.bridge for s in handle.topology.switches)
    )
    if handle.processes:
        lines.append("processes:")
        for record in handle.processes:
            lines.append(
                f"  {record.name:<12} in {record.host:<7} pid {record.pid:<7} {record.log}"
            )
    client = handle.ns("client")
    lines += [
        "try:",
        f"  ip netns exec {client} curl -s http://192.168.80.101:8080/",
        f"  ip netns exec {handle.ns('ep1')} ss -tln",
    ]
    if handle.state.bird_socket:
        router = handle.ns("router")
        lines += [
            f"  ip netns exec {router} birdc -s {handle.state.bird_socket} show protocols",
            f"  ip netns exec {router} ip route",
        ]
    lines.append(
        f"  ip netns exec {client} {sys.executable} -m appliance.lab.traffic.http_loop "
        "http://192.168.80.101:8080/ --duration 5 --count 100"
    )
    return "\n".join(lines)
