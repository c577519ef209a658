"""``triolb lab demo``: scenario 4 with both appliance nodes, traffic and dashboards, until Ctrl-C.

What it brings up (see DESIGN.md, scenario 4: active-backup with connection sync):

1. the lab: client, router (BIRD), node1, node2, endpoints ep1..ep3 with their servers;
2. ``triolb run`` on both nodes with the shipped ``scenario4-ctsync-node*.yaml`` (copied to the
   demo's work directory with absolute secret paths), waited for: dataplane ready, node1
   active, BIRD's best route for the VIP via node1;
3. a dashboard forwarder per node (:mod:`appliance.lab.forwarder`): ``127.0.0.1:8081`` shows
   node1's dashboard, ``127.0.0.1:8082`` node2's, from the host's browser;
4. gentle traffic from the client (:mod:`appliance.lab.demo_traffic`): a few HTTP requests per
   second and a handful of long-lived echo streams through the VIP, bounded in rate and time.

Then it prints the URLs and what to try (``triolb lab failover``, ``triolb lab down``), reports
role changes as they happen, and on Ctrl-C (SIGINT/SIGTERM), after ``max_seconds``, when the lab
was removed by ``triolb lab down``, or after an error, removes everything: processes (daemons,
servers, BIRD, traffic, forwarders), namespaces, pinned maps, the work directory.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from appliance.lab import demo_nodes as nodes
from appliance.lab import forwarder, procs
from appliance.lab.api import LabHandle, lab_up
from appliance.lab.demo_state import DemoInfo, workdir
from appliance.lab.demo_traffic import read_status
from appliance.lab.state import ProcessRecord, save_state, state_path

DEMO_SCENARIO = "scenario4-ctsync"
DASHBOARD_PORT = 8081  # node1; node2 on the next port
NODE_WEB_PORT = 8080  # each daemon's web server, on 127.0.0.1 inside its namespace
#: the traffic runs at most this long (or the demo's own bound, if shorter)
TRAFFIC_MAX_S = 3600.0
UNBOUNDED_S = 86400.0
STREAMS = 4
HTTP_RATE = 3.0
STREAM_RATE = 2.0
MONITOR_INTERVAL_S = 1.0
ROLE_POLL_S = 2.0
TRAFFIC_NAME = "demo-traffic"


class Demo:
    """One demo run: the lab handle, what was started in it, and the way out."""

    def __init__(
        self,
        handle: LabHandle,
        config_dir: Path,
        dashboard_port: int,
        stopped: Callable[[], bool],
        out: TextIO,
    ) -> None:
        self.handle = handle
        self.config_dir = config_dir
        self.ports = {node: dashboard_port + i for i, node in enumerate(nodes.NODES)}
        self._stopped = stopped
        self.out = out
        self.workdir = workdir(handle.prefix)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.info = DemoInfo(handle.prefix, self.ports, handle.state.owner_pid)
        self.forwarders: list[subprocess.Popen[bytes]] = []

    def lab_removed(self) -> bool:
        """``triolb lab down`` removed the lab under the demo's feet."""
        return not state_path(self.handle.prefix).exists()

    def stopped(self) -> bool:
        """Ctrl-C, the time bound, or the lab removed: time to go."""
        return self._stopped() or self.lab_removed()

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # --- bring-up ---------------------------------------------------------------------------

    def start_daemons(self) -> None:
        for node in nodes.NODES:
            config = nodes.write_config(self.config_dir, self.workdir, node)
            pid = nodes.spawn_daemon(self.handle, node, config)
            self.say(f"{node}: triolb run --config {config} (pid {pid})")

    def start_forwarder(self, node: str, seconds: float) -> None:
        """A forwarder process in the root namespace (see :mod:`appliance.lab.forwarder`),
        recorded in the lab's state so that every teardown path stops it."""
        name = f"{node}-dashboard"
        log = self.handle.log_dir / f"{name}.log"
        argv = forwarder.argv_for(self.ports[node], self.handle.ns(node), NODE_WEB_PORT, seconds)
        with open(log, "ab") as sink:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=procs.lab_env(),
                close_fds=True,
            )
        self.forwarders.append(proc)
        ticks = procs.pid_start_ticks(proc.pid) or 0
        record = ProcessRecord(name, node, proc.pid, ticks, argv, str(log))
        self.handle.state.processes.append(record)
        save_state(self.handle.state)
        self.handle.wait_for_log(name, "listening")

    def wait_ready(self) -> None:
        for node in nodes.NODES:
            self.wait(
                f"{node}'s dataplane (compiling the eBPF program takes a while)",
                functools.partial(nodes.daemon_logged, self.handle, node, "dataplane_ready"),
                nodes.DAEMON_READY_S,
            )
        for node in nodes.NODES:
            self.wait(
                f"{node}'s daemon",
                functools.partial(nodes.daemon_logged, self.handle, node, "daemon_ready"),
                nodes.READY_S,
            )
        self.wait(
            "node1 active, node2 backup",
            lambda: nodes.roles(self.ports) == {"node1": "active", "node2": "backup"},
            nodes.READY_S,
        )
        self.wait(
            f"BIRD's best route for {nodes.VIP_PREFIX} via node1",
            lambda: nodes.bird_best_via(self.handle) == "node1",
            nodes.READY_S,
        )
        self.say(f"ready: node1 active, node2 backup, BIRD routes {nodes.VIP} via node1")

    def start_traffic(self, seconds: float) -> None:
        argv = procs.python_module_argv(
            "appliance.lab.demo_traffic",
            f"--vip={nodes.VIP}",
            f"--status={self.info.traffic_status}",
            f"--http-port={nodes.WEB_PORT}",
            f"--http-rate={HTTP_RATE:g}",
            f"--echo-port={nodes.ECHO_PORT}",
            f"--streams={STREAMS}",
            f"--stream-rate={STREAM_RATE:g}",
            f"--max-seconds={seconds:g}",
        )
        self.handle.spawn("client", TRAFFIC_NAME, argv)

        def echoing() -> bool:
            status = read_status(self.info.traffic_status)
            if status is None:
                return False
            streams = status["streams"]
            return bool(streams["connected"] == STREAMS and streams["echoed"] >= STREAMS)

        self.wait(f"{STREAMS} echo streams through the VIP", echoing, nodes.READY_S)
        self.say(
            f"traffic: {HTTP_RATE:g} HTTP GET/s to http://{nodes.VIP}:{nodes.WEB_PORT}/ and "
            f"{STREAMS} echo streams to {nodes.VIP}:{nodes.ECHO_PORT} ({STREAM_RATE:g} msg/s "
            f"each) for at most {seconds:g}s; status {self.info.traffic_status}"
        )

    def wait(self, what: str, probe: Callable[[], object], timeout: float) -> None:
        self.say(f"waiting for {what} ...")
        nodes.wait_until(self.stopped, probe, what, timeout)

    # --- running ----------------------------------------------------------------------------

    def print_guide(self) -> None:
        triolb = Path(sys.executable).with_name("triolb")
        cli = str(triolb) if triolb.exists() else f"{sys.executable} -m appliance"
        router, client = self.handle.ns("router"), self.handle.ns("client")
        lines = ["dashboards (from this host):"]
        lines += [f"  {node}  {self.info.url(node)}" for node in nodes.NODES]
        lines += [
            "try:",
            f"  {cli} lab failover           # isolate the active node for 20 s, then restore",
            f"  {cli} lab status",
            f"  ip netns exec {router} birdc -s {self.handle.state.bird_socket} "
            f"show route {nodes.VIP_PREFIX}",
            f"  ip netns exec {client} curl -s http://{nodes.VIP}/",
            f"  {cli} lab down {self.handle.prefix}       # or Ctrl-C here: removes everything",
        ]
        self.say("\n".join(lines))

    def traffic_line(self) -> str:
        status = read_status(self.info.traffic_status)
        if status is None:
            return "traffic: no status"
        s, h = status["streams"], status["http"]
        return (
            f"traffic: streams {s['alive']}/{s['count']} alive, {s['resets']} reset, "
            f"{s['echoed']} echoes, longest stall {s['longest_stall_ms']} ms; "
            f"http {h['ok']} ok, {h['failed']} failed{' (finished)' if status['done'] else ''}"
        )

    def monitor(self) -> None:
        """Report role changes and dead daemons until stopped or the lab was removed."""
        last: dict[str, str] = {}
        dead: set[str] = set()
        next_poll = 0.0
        while not self.stopped():
            for node in nodes.NODES:
                name = nodes.daemon_name(node)
                if name not in dead and not self.handle.alive(name):
                    dead.add(name)
                    self.say(f"{name} exited; see {self.handle.log_path(name)}")
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + ROLE_POLL_S
                now = nodes.roles(self.ports)
                if now != last:
                    last = now
                    self.say(f"{time.strftime('%H:%M:%S')} roles {now}; {self.traffic_line()}")
            time.sleep(MONITOR_INTERVAL_S)

    def close(self) -> None:
        """After ``handle.down()``: reap the forwarders (stopped with the lab's processes)."""
        for proc in self.forwarders:
            try:
                proc.wait(timeout=procs.KILL_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=procs.KILL_TIMEOUT)


def _bring_up(demo: Demo, remaining: Callable[[], float]) -> None:
    demo.start_daemons()
    for node in nodes.NODES:
        demo.start_forwarder(node, min(UNBOUNDED_S, remaining() + 60.0))
    demo.wait_ready()
    demo.start_traffic(max(1.0, min(TRAFFIC_MAX_S, remaining())))
    demo.info.save()
    demo.print_guide()


def _run(demo: Demo, remaining: Callable[[], float], bound: str) -> int:
    """Bring up and monitor; 0 unless something failed (reported with the logs' tails)."""
    handle = demo.handle
    try:
        _bring_up(demo, remaining)
        demo.say(f"demo running{bound}; Ctrl-C to stop and tear down")
        demo.monitor()
        demo.say(demo.traffic_line())
    except nodes.DemoStopped as exc:
        demo.say(f"stopped while waiting for {exc}")
    except (TimeoutError, RuntimeError, OSError, LookupError, ValueError) as exc:
        if demo.lab_removed():  # its logs went with it: a consequence, not the cause
            demo.say(f"lab {handle.prefix} was removed (triolb lab down)")
            return 0
        demo.say(f"demo failed: {exc}")
        for record in handle.processes:
            demo.say(f"--- {record.name} ({record.log}):\n{handle.log_tail(record.name, 8)}")
        return 1
    if demo.lab_removed():
        demo.say(f"lab {handle.prefix} was removed (triolb lab down)")
    return 0


def run_demo(
    config_dir: Path,
    max_seconds: float | None = None,
    out: TextIO = sys.stdout,
    dashboard_port: int = DASHBOARD_PORT,
) -> int:
    """Run the demo until SIGINT/SIGTERM, ``max_seconds`` (from the start), ``triolb lab down``
    or an error; always tear down. Returns 0, or 1 after an error."""
    stop = threading.Event()
    previous: dict[int, Any] = {}
    started = time.monotonic()
    limit = UNBOUNDED_S if max_seconds is None else max_seconds

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    def remaining() -> float:
        return limit - (time.monotonic() - started)

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        handle = lab_up(DEMO_SCENARIO, endpoint_seconds=min(UNBOUNDED_S, limit + 60.0))
        demo = Demo(
            handle, config_dir, dashboard_port, lambda: stop.is_set() or remaining() <= 0, out
        )
        try:
            demo.say(f"lab {handle.prefix} ({DEMO_SCENARIO}) up; logs in {handle.log_dir}")
            bound = "" if max_seconds is None else f" (at most {max_seconds:g}s)"
            code = _run(demo, remaining, bound)
        finally:
            removed = handle.down()
            demo.close()
            demo.say(f"lab {handle.prefix} removed ({len(removed)} namespaces)")
    finally:
        for number, handler in previous.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
    return code
