"""``triolb lab demo`` end to end, as a person would use it.

The demo runs in a subprocess (``--max-seconds`` bounds it). Once it printed its URLs, the
test, from the root namespace's loopback (through the demo's forwarders), fetches both
dashboards' ``/`` and ``/api/v1/ha`` and reads the event stream; runs ``triolb lab failover``
while watching node2 become active and then node1 again; checks that the demo's echo streams
kept going with no reset; then sends SIGINT and checks that nothing of the lab is left: no
namespace, no process, no state file, no forwarder listening. Short tests cover the other
ways out: Ctrl-C or ``triolb lab down PREFIX`` while the daemons are still compiling, and an
error (no configs).
"""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.lab import netbuild, procs
from appliance.lab.api import lab_down
from appliance.lab.demo import STREAMS, run_demo
from appliance.lab.demo_traffic import read_status
from appliance.lab.state import ProcessRecord, load_state, state_path
from tests.lab.support import polling

pytestmark = pytest.mark.lab

#: the eBPF compile of two daemons at once on a busy 2-core machine, plus BGP and HA settling
READY_S = 300.0
FAILOVER_RUN_S = 240.0
RESTORE_AFTER_S = 5.0
MAX_SECONDS = 600.0
EXIT_S = 60.0
HTTP_TIMEOUT_S = 5.0
#: ports of the root namespace's loopback for the dashboards (not the default 8081/8082, so a
#: demo somebody runs by hand does not collide with the test's)
DASHBOARD_PORT = 18081


class DemoProcess:
    """``triolb lab demo`` in a subprocess; its output collected line by line by a thread."""

    def __init__(self, *args: str) -> None:
        argv = [sys.executable, "-m", "appliance", "lab", "demo", *args]
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=procs.lab_env(),
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, needle: str, timeout: float) -> str:
        def probe() -> str | None:
            found = [line for line in self.lines if needle in line]
            if not found and self.proc.poll() is not None:
                raise AssertionError(f"the demo exited ({self.proc.returncode}):\n{self.text}")
            return found[0] if found else None

        return polling.wait_for(probe, f"{needle!r} from the demo", timeout, lambda: self.text)

    def prefix(self) -> str:
        match = re.search(r"^lab (tlb[0-9a-f]{4}) ", self.text, re.MULTILINE)
        assert match, self.text
        return match.group(1)

    def interrupt(self) -> int:
        """SIGINT (Ctrl-C), then its exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=EXIT_S)
        self._reader.join(timeout=EXIT_S)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=EXIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=EXIT_S)


@pytest.fixture
def demo_factory() -> Iterator[list[DemoProcess]]:
    """The demos a test starts; stopped and their labs removed whatever happened."""
    demos: list[DemoProcess] = []
    yield demos
    for demo in demos:
        demo.kill()
        match = re.search(r"^lab (tlb[0-9a-f]{4}) ", demo.text, re.MULTILINE)
        if match and load_state(match.group(1)) is not None:
            lab_down(match.group(1))


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET from the root namespace's loopback."""
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        body = response.read().decode()
        return response.status, response.headers.get("Content-Type", ""), body


def ha_roles(url: str) -> str | None:
    try:
        _, _, body = get(f"{url}api/v1/ha")
    except OSError:
        return None
    groups = json.loads(body)["groups"]
    return str(groups[0]["role"]) if groups else None


def stream_events(url: str, wanted: int) -> list[str]:
    """The first ``wanted`` distinct ``event: state`` payloads of the node's SSE stream, read
    as they arrive through the forwarder (each is a new state version: proof of streaming)."""
    seen: list[str] = []
    deadline = time.monotonic() + 30.0
    with urllib.request.urlopen(f"{url}api/v1/stream", timeout=HTTP_TIMEOUT_S) as response:
        assert response.headers.get("Content-Type", "").startswith("text/event-stream")
        kind = ""
        while len(seen) < wanted and time.monotonic() < deadline:
            line = response.readline().decode().strip()
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "state" and line not in seen:
                seen.append(line)
    return seen


def dashboards(demo: DemoProcess) -> dict[str, str]:
    found = dict(re.findall(r"^\s+(node\d)\s+(http://127\.0\.0\.1:\d+/)$", demo.text, re.M))
    assert set(found) == {"node1", "node2"}, demo.text
    return found


def traffic_status(demo: DemoProcess) -> dict[str, Any]:
    match = re.search(r"status (\S+traffic\.status\.json)", demo.text)
    assert match, demo.text
    status = read_status(Path(match.group(1)))
    assert status is not None
    return status


def echoed(status: dict[str, Any]) -> dict[int, int]:
    return {int(s["stream"]): int(s["echoed"]) for s in status["streams"]["per_stream"]}


def assert_gone(prefix: str, records: list[ProcessRecord], ports: list[int]) -> None:
    """No namespace, process, state file or listening forwarder of lab ``prefix`` is left."""
    assert [ns for ns in netbuild.lab_namespaces() if ns.startswith(f"{prefix}-")] == []
    assert not state_path(prefix).exists()
    alive = [r.name for r in records if procs.pid_alive(r.pid, r.start_ticks)]
    assert alive == [], alive
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"something listens on {port}"


def test_demo_dashboards_failover_and_ctrl_c(demo_factory: list[DemoProcess]) -> None:
    demo = DemoProcess(f"--max-seconds={MAX_SECONDS:g}", f"--dashboard-port={DASHBOARD_PORT}")
    demo_factory.append(demo)
    demo.wait_line("demo running", READY_S)
    prefix = demo.prefix()
    urls = dashboards(demo)
    assert "lab failover" in demo.text and f"lab down {prefix}" in demo.text

    for node, url in urls.items():
        status, kind, body = get(url)
        assert status == 200 and kind.startswith("text/html"), (node, status, kind)
        assert "<title>triolb dashboard</title>" in body
    assert {n: ha_roles(u) for n, u in urls.items()} == {"node1": "active", "node2": "backup"}
    events = stream_events(urls["node1"], 2)
    assert len(events) == 2, f"the SSE stream through the forwarder gave only {events}"

    before = traffic_status(demo)
    assert before["streams"]["alive"] == STREAMS, before["streams"]
    failover = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "appliance",
            "lab",
            "failover",
            f"--restore-after={RESTORE_AFTER_S}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=procs.lab_env(),
    )
    try:
        polling.wait_for(
            lambda: ha_roles(urls["node2"]) == "active", "node2 active", FAILOVER_RUN_S
        )
        polling.wait_for(
            lambda: ha_roles(urls["node1"]) == "active" and ha_roles(urls["node2"]) == "backup",
            "node1 active again, node2 backup",
            FAILOVER_RUN_S,
        )
        output, _ = failover.communicate(timeout=FAILOVER_RUN_S)
    finally:
        if failover.poll() is None:
            failover.kill()
            failover.communicate(timeout=EXIT_S)
    print(output)
    assert failover.returncode == 0, output
    assert "node1: links down" in output and "node2 active after" in output
    assert f"streams: {STREAMS}/{STREAMS} still alive" in output
    assert "roles after {'node1': 'active', 'node2': 'backup'}" in output

    after = traffic_status(demo)
    print(
        "traffic after the failover:",
        {k: v for k, v in after["streams"].items() if k != "per_stream"},
    )
    assert after["streams"]["resets"] == 0 and after["streams"]["alive"] == STREAMS
    grown = {s: n - echoed(before)[s] for s, n in echoed(after).items()}
    assert all(n > 0 for n in grown.values()), grown
    assert after["http"]["ok"] > before["http"]["ok"]
    print("http:", after["http"]["ok"], "ok,", after["http"]["failed"], "failed")

    state = load_state(prefix)
    assert state is not None
    records = list(state.processes)
    assert {"node1-dashboard", "node2-dashboard", "demo-traffic"} <= {r.name for r in records}
    assert demo.interrupt() == 0, demo.text
    assert re.search(rf"^lab {prefix} removed \(8 namespaces\)$", demo.text, re.M), demo.text
    assert "traffic: streams" in demo.text
    assert_gone(prefix, records, [DASHBOARD_PORT, DASHBOARD_PORT + 1])


@pytest.mark.parametrize("way_out", ["ctrl-c", "lab down"])
def test_stopping_while_the_daemons_compile_tears_down(
    demo_factory: list[DemoProcess], way_out: str
) -> None:
    """Ctrl-C, or ``triolb lab down PREFIX`` from elsewhere, while the demo still waits for
    the daemons: it stops waiting, and nothing of its lab is left."""
    demo = DemoProcess("--max-seconds=300", f"--dashboard-port={DASHBOARD_PORT}")
    demo_factory.append(demo)
    demo.wait_line("waiting for node1's dataplane", READY_S)
    prefix = demo.prefix()
    state = load_state(prefix)
    assert state is not None
    records = list(state.processes)
    assert {"node1-daemon", "node2-daemon", "node1-dashboard"} <= {r.name for r in records}
    if way_out == "ctrl-c":
        assert demo.interrupt() == 0, demo.text
    else:
        down = subprocess.run(
            [sys.executable, "-m", "appliance", "lab", "down", prefix],
            capture_output=True,
            text=True,
            timeout=EXIT_S,
            env=procs.lab_env(),
        )
        assert down.returncode == 0 and f"removed {prefix}" in down.stdout, down
        assert demo.proc.wait(timeout=EXIT_S) == 0, demo.text
        demo.wait_line(f"lab {prefix} was removed (triolb lab down)", EXIT_S)
    assert "stopped while waiting for node1's dataplane" in demo.text, demo.text
    assert_gone(prefix, records, [DASHBOARD_PORT, DASHBOARD_PORT + 1])


def test_error_reports_and_tears_down(tmp_path: Path) -> None:
    """No configs in the config directory: the demo says so, removes its lab, returns 1 and
    gives this process its signal handlers back."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out = io.StringIO()
    assert run_demo(tmp_path, max_seconds=60, out=out, dashboard_port=DASHBOARD_PORT) == 1
    text = out.getvalue()
    assert "demo failed" in text and "scenario4-ctsync-node1.yaml" in text, text
    match = re.search(r"^lab (tlb[0-9a-f]{4}) ", text, re.MULTILINE)
    assert match, text
    assert re.search(rf"^lab {match.group(1)} removed \(8 namespaces\)$", text, re.M), text
    assert_gone(match.group(1), [], [])
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
