"""The receivers under test behind one small interface.

A receiver is started inside the lab's ``node1`` namespace (192.168.80.252, AS 65100) and peers
with BIRD on 192.168.80.254 (AS 65101). The bench then polls it (~10 Hz) for a
:class:`Progress`: when its session became Established, how many prefixes sit in its Adj-RIB-In,
when the last one arrived. Times are ``time.monotonic()`` values (CLOCK_MONOTONIC is the same
in every network namespace). :meth:`Receiver.pids` gives the processes whose memory is counted
(their descendants are added by the bench).

- :class:`TriolbReceiver`: ``python -m bgp.bench_receiver`` (the lead's contract), JSON lines on
  its stdout.
- :class:`ExabgpReceiver`: ExaBGP (own venv) with an API process (:mod:`bgp_ingest.exabgp_api`)
  that counts the parsed updates and writes the same JSON lines.
- :class:`GobgpReceiver`: ``gobgpd``; Established from ``gobgp monitor neighbor``, the end of
  ingest from its CPU time going idle plus one ``gobgp -j neighbor`` query (polling it often
  slows it down badly, see the class).
"""

from __future__ import annotations

import abc
import contextlib
import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import attrs

from appliance.lab import procs
from appliance.lab.api import LabHandle
from bgp_ingest import install
from bgp_ingest.prefixes import RECEIVER_ADDRESS, RECEIVER_AS, ROUTER_ADDRESS, ROUTER_AS
from bgp_ingest.procstat import CLK_TCK, cpu_ticks

RECEIVER_HOST = "node1"
MAX_SAMPLES = 50_000
CLI_TIMEOUT = 10.0


class ReceiverUnavailable(Exception):
    """The receiver cannot run here; the message goes into the results as ``error``."""


@attrs.define
class Progress:
    established_t: float | None = None
    received: int = 0
    done_t: float | None = None
    failure: str | None = None
    timed_out: bool = False  # the receiver gave up by itself (its own --timeout)
    extra: dict[str, Any] = attrs.Factory(dict)
    #: (monotonic time, received) observations, for the milestones (bounded)
    samples: list[tuple[float, int]] = attrs.Factory(list)

    def observe(self, t: float, received: int) -> None:
        self.received = received
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append((t, received))


@attrs.frozen
class RunSpec:
    expect: int
    timeout: float
    workdir: Path


class Receiver(abc.ABC):
    name: ClassVar[str]
    process_name: ClassVar[str]  # name of its main process in the lab
    #: reports its own progress lines (milestones come from them; GoBGP's are not observed)
    reports_progress: ClassVar[bool] = True

    def __init__(self) -> None:
        self.lab: LabHandle | None = None

    @abc.abstractmethod
    def prepare(self) -> dict[str, Any]:
        """Install/check what the receiver needs; returns facts for the results (version…).
        Raises :class:`ReceiverUnavailable`."""

    @abc.abstractmethod
    def start(self, lab: LabHandle, spec: RunSpec) -> None:
        """Start the receiver in ``node1``; returns at once (the bench polls)."""

    @abc.abstractmethod
    def poll(self) -> Progress:
        """Current state; cheap enough to call at ~10 Hz."""

    def count_now(self) -> int | None:
        """Ask for the count once more (at a timeout); None: what poll() saw is current."""
        return None

    def pids(self) -> list[int]:
        if self.lab is None:
            return []
        try:
            return [self.lab.process(self.process_name).pid]
        except KeyError:
            return []

    def alive(self) -> bool:
        if self.lab is None:
            return False
        try:
            return self.lab.alive(self.process_name)
        except KeyError:
            return False

    def log_tail(self, lines: int = 15) -> str:
        if self.lab is None:
            return ""
        try:
            return self.lab.log_tail(self.process_name, lines)
        except KeyError:
            return ""

    def stop(self) -> None:
        if self.lab is None:
            return
        with contextlib.suppress(KeyError):
            self.lab.stop(self.process_name)


class JsonLinesTail:
    """Reads the complete JSON-object lines appended to a file since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as src:
                src.seek(self.offset)
                data = src.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = lines.pop()
        out: list[dict[str, Any]] = []
        for line in lines:
            line = line.strip()
            if not line.startswith(b"{"):
                continue
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and "event" in value:
                out.append(value)
        return out


class EventLinesReceiver(Receiver):
    """A receiver that reports through ``established`` / ``progress`` / ``done`` JSON lines."""

    def __init__(self) -> None:
        super().__init__()
        self.events: JsonLinesTail | None = None
        self.progress = Progress()

    def poll(self) -> Progress:
        if self.events is None:
            return self.progress
        progress = self.progress
        for event in self.events.read():
            kind = event.get("event")
            t = float(event["t"]) if isinstance(event.get("t"), int | float) else time.monotonic()
            if "received" in event:
                progress.observe(t, int(event["received"]))
            if kind == "established":
                # The latest session counts (a flapped one starts again from nothing).
                progress.established_t = t
                progress.done_t = None
            elif kind == "done" and progress.done_t is None:
                progress.done_t = t
                for key, value in event.items():
                    if key not in ("event", "t", "received"):
                        progress.extra[key] = value
            elif kind == "down" and progress.done_t is None:
                progress.established_t = None
                progress.extra["session_flaps"] = progress.extra.get("session_flaps", 0) + 1
            elif kind == "timeout":
                progress.timed_out = True
            elif kind == "error":
                progress.failure = str(event.get("message", event))
        return progress


class TriolbReceiver(EventLinesReceiver):
    name = "triolb"
    process_name = "triolb-receiver"
    MODULE = "bgp.bench_receiver"

    def prepare(self) -> dict[str, Any]:
        try:
            found = importlib.util.find_spec(self.MODULE)
        except ImportError:
            found = None
        if found is None:
            raise ReceiverUnavailable(f"{self.MODULE} not available")
        return {"python": sys.version.split()[0]}

    def start(self, lab: LabHandle, spec: RunSpec) -> None:
        self.lab = lab
        events = spec.workdir / "triolb-events.jsonl"
        events.write_bytes(b"")
        self.events = JsonLinesTail(events)
        argv = [
            sys.executable, "-m", self.MODULE,
            "--local-as", str(RECEIVER_AS),
            "--router-id", RECEIVER_ADDRESS,
            "--peer", ROUTER_ADDRESS,
            "--peer-as", str(ROUTER_AS),
            "--expect", str(spec.expect),
            "--timeout", str(int(spec.timeout)),
        ]  # fmt: skip
        # stdout (the JSON events) to its own file; stderr (logs) to the lab's process log.
        wrapped = ["/bin/sh", "-c", 'exec "$@" >"$0"', str(events), *argv]
        lab.spawn(RECEIVER_HOST, self.process_name, wrapped)


EXABGP_CONF = """\
# generated by bench/bgp_ingest.py
process counter {{
    run {python} {script} --events {events} --expect {expect};
    encoder json;
}}

neighbor {peer} {{
    router-id {local};
    local-address {local};
    local-as {local_as};
    peer-as {peer_as};
    passive true;
    adj-rib-in {adj_rib_in};
    family {{
        ipv4 unicast;
    }}
    api {{
        processes [ counter ];
        neighbor-changes;
        receive {{
            parsed;
            update;
        }}
    }}
}}
"""


class ExabgpReceiver(EventLinesReceiver):
    name = "exabgp"
    process_name = "exabgp"

    def __init__(self, version: str = install.EXABGP_VERSION, adj_rib_in: bool = True) -> None:
        super().__init__()
        self.version = version
        self.adj_rib_in = adj_rib_in
        self.python: Path | None = None

    def prepare(self) -> dict[str, Any]:
        try:
            self.python = install.ensure_exabgp(self.version)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise ReceiverUnavailable(f"cannot install exabgp: {exc}") from exc
        out = subprocess.run(
            [str(self.python), "-c", "import exabgp.version as v; print(v.version)"],
            capture_output=True, text=True, timeout=CLI_TIMEOUT,
        )  # fmt: skip
        return {
            "version": out.stdout.strip() or self.version,
            "venv": str(self.python.parent.parent),
            "adj_rib_in": self.adj_rib_in,
        }

    def start(self, lab: LabHandle, spec: RunSpec) -> None:
        assert self.python is not None, "prepare() first"
        self.lab = lab
        events = spec.workdir / "exabgp-events.jsonl"
        events.write_bytes(b"")
        self.events = JsonLinesTail(events)
        conf = spec.workdir / "exabgp.conf"
        conf.write_text(
            EXABGP_CONF.format(
                python=self.python,
                script=Path(__file__).with_name("exabgp_api.py"),
                events=events,
                expect=spec.expect,
                peer=ROUTER_ADDRESS,
                local=RECEIVER_ADDRESS,
                local_as=RECEIVER_AS,
                peer_as=ROUTER_AS,
                adj_rib_in="true" if self.adj_rib_in else "false",
            )
        )
        env = {
            # No /etc/exabgp/exabgp.env; stay root (the API process writes into the lab dir);
            # no CLI named pipes; passive: listen on the receiver address, BIRD connects (one
            # TCP connection, no collision); no per-message statistics log lines.
            "EXABGP_ENVFILE": str(spec.workdir / "exabgp.env.absent"),
            "exabgp_daemon_user": "root",
            "exabgp_daemon_drop": "false",
            "exabgp_daemon_daemonize": "false",
            "exabgp_api_cli": "false",
            "exabgp_tcp_bind": RECEIVER_ADDRESS,
            "exabgp_tcp_port": "179",
            "exabgp_log_level": "INFO",
            "exabgp_log_statistics": "false",
            "exabgp_log_destination": "stdout",
        }
        argv = [str(self.python), "-m", "exabgp", "server", str(conf)]
        lab.spawn(RECEIVER_HOST, self.process_name, argv, env)


GOBGP_CONF = """\
# generated by bench/bgp_ingest.py
[global.config]
  as = {local_as}
  router-id = "{local}"

[[neighbors]]
  [neighbors.config]
    neighbor-address = "{peer}"
    peer-as = {peer_as}
  [neighbors.transport.config]
    local-address = "{local}"
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
"""

GOBGP_API = "127.0.0.1:50051"  # inside node1's namespace
MONITOR_START_TIMEOUT = 10.0
MONITOR_MAX_LINES = 10_000
#: gobgpd counts as idle below this share of one core (10 ms of CPU per 100 ms poll tick)…
IDLE_CPU_SHARE = 0.1
#: …and is asked for its count once it has been idle this long; while busy, only this rarely:
IDLE_WINDOW = 0.3
MAX_QUERY_INTERVAL = 30.0
QUERY_INTERVAL_BEFORE_ESTABLISHED = 1.0


class GobgpReceiver(Receiver):
    """gobgpd, observed without slowing it down.

    Asking gobgpd for its received count is expensive at this scale: every ListPeer walks the
    whole Adj-RIB-In inside gobgpd's main loop, and ``gobgp neighbor <addr>`` also asks for
    the advertised count, which runs the export policy over the whole RIB. Polled that way at
    1 Hz, 1M prefixes were not in after 600 s; with ``gobgp -j neighbor`` every <= 2 s they
    took 49 s; unobserved, gobgpd's CPU shows the same ingest done in ~21 s. So the bench:

    - dates Established by a ``gobgp monitor neighbor`` stream read by a thread (ms);
    - samples gobgpd's CPU time from ``/proc/<pid>/stat`` at every 10 Hz tick (free);
    - asks ``gobgp -j neighbor`` (all peers, no advertised count) only once gobgpd has been
      idle (< 10 % of a core) for 0.3 s, and otherwise at most every 30 s;
    - when an idle-time answer shows all N prefixes, dates the end of ingest to the last tick
      at which gobgpd was still busy (``done_from: "cpu idle"``, resolution one 0.1 s tick);
      an answer obtained while gobgpd was busy dates it to that query (``done_from: "poll"``).
    """

    name = "gobgp"
    process_name = "gobgpd"
    reports_progress = False

    def __init__(self) -> None:
        super().__init__()
        self.progress = Progress()
        self.expect = 0
        self.lock = threading.Lock()
        self.monitor: subprocess.Popen[bytes] | None = None
        self.monitor_established_t: float | None = None
        self.query_seconds: list[float] = []
        self.last_query_t = 0.0
        self.queried_since_sample = False
        self.prev_sample: tuple[float, int] | None = None
        self.last_busy_t = 0.0
        self.idle_since: float | None = None

    def prepare(self) -> dict[str, Any]:
        try:
            install.ensure_debian(["gobgpd"])
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            raise ReceiverUnavailable(f"cannot install gobgpd: {exc}") from exc
        out = subprocess.run(
            ["gobgpd", "--version"], capture_output=True, text=True, timeout=CLI_TIMEOUT
        )
        return {"version": out.stdout.strip().split()[-1] if out.stdout.strip() else "?"}

    def start(self, lab: LabHandle, spec: RunSpec) -> None:
        self.lab = lab
        self.expect = spec.expect
        conf = spec.workdir / "gobgpd.toml"
        conf.write_text(
            GOBGP_CONF.format(
                local_as=RECEIVER_AS, local=RECEIVER_ADDRESS, peer=ROUTER_ADDRESS, peer_as=ROUTER_AS
            )
        )
        argv = [
            "gobgpd", "-f", str(conf), "-t", "toml", "--api-hosts", GOBGP_API,
            "--pprof-disable", "-l", "info", "-p",
        ]  # fmt: skip
        lab.spawn(RECEIVER_HOST, self.process_name, argv)
        self._start_monitor(lab)

    def _start_monitor(self, lab: LabHandle) -> None:
        """``gobgp monitor neighbor`` streams session-state changes; a reader thread stamps each
        line on arrival."""
        deadline = time.monotonic() + MONITOR_START_TIMEOUT
        while time.monotonic() < deadline:  # the gRPC server needs a moment to listen
            if self._query() is not None:
                break
            if not self.alive():
                return
            time.sleep(0.05)
        host, port = GOBGP_API.split(":")
        argv = ["gobgp", "-u", host, "-p", port, "-j", "monitor", "neighbor", ROUTER_ADDRESS]
        self.monitor = subprocess.Popen(
            procs.netns_command(lab.ns(RECEIVER_HOST), argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        thread = threading.Thread(target=self._read_monitor, args=(self.monitor,), daemon=True)
        thread.start()

    def _read_monitor(self, monitor: subprocess.Popen[bytes]) -> None:
        assert monitor.stdout is not None
        for _line_number, raw in zip(range(MONITOR_MAX_LINES), monitor.stdout, strict=False):
            now = time.monotonic()
            try:
                state = json.loads(raw).get("state", {})
            except (ValueError, AttributeError):
                continue
            established = str(state.get("session_state")).lower() in ("6", "established")
            with self.lock:
                if not established:
                    self.monitor_established_t = None
                elif self.monitor_established_t is None:
                    self.monitor_established_t = now

    def stop(self) -> None:
        monitor, self.monitor = self.monitor, None
        if monitor is not None:
            if monitor.poll() is None:
                procs.stop_pids([(monitor.pid, procs.pid_start_ticks(monitor.pid) or 0)])
            monitor.wait(timeout=procs.KILL_TIMEOUT)
        super().stop()

    def _query(self) -> dict[str, Any] | None:
        """The peer's entry from ``gobgp -j neighbor`` (no per-peer advertised count)."""
        assert self.lab is not None
        host, port = GOBGP_API.split(":")
        argv = ["gobgp", "-u", host, "-p", port, "-j", "neighbor"]
        began = time.monotonic()
        self.last_query_t = began
        self.queried_since_sample = True
        try:
            result = self.lab.exec(RECEIVER_HOST, argv, timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.query_seconds.append(time.monotonic() - began)
        if result.returncode != 0:
            return None  # gRPC not up yet
        try:
            peers = json.loads(result.stdout)
        except ValueError:
            return None
        for peer in peers if isinstance(peers, list) else [peers]:
            if isinstance(peer, dict) and _peer_address(peer) == ROUTER_ADDRESS:
                return peer
        return None

    def count_now(self) -> int | None:
        peer = self._query()
        if peer is None:
            return None
        return sum(
            int(a.get("state", {}).get("received", 0) or 0) for a in peer.get("afi_safis") or []
        )

    def _sample_cpu(self, now: float) -> None:
        """Track when gobgpd was last busy and since when it has been idle. A sample whose
        interval contains one of our queries says nothing (the query itself costs gobgpd CPU,
        up to ~0.5 s at 1M prefixes): it restarts the idle window without marking busy."""
        pid = self.pids()[0] if self.pids() else None
        ticks = cpu_ticks(pid) if pid is not None else None
        if ticks is None:
            return
        if self.prev_sample is not None:
            prev_t, prev_ticks = self.prev_sample
            used = (ticks - prev_ticks) / CLK_TCK
            if self.queried_since_sample:
                self.idle_since = None
            elif used > IDLE_CPU_SHARE * (now - prev_t):
                self.last_busy_t = now
                self.idle_since = None
            elif self.idle_since is None:
                self.idle_since = prev_t
        self.prev_sample = (now, ticks)
        self.queried_since_sample = False

    def poll(self) -> Progress:
        now = time.monotonic()
        self._sample_cpu(now)
        with self.lock:
            established_t = self.monitor_established_t
        progress = self.progress
        since_query = now - self.last_query_t
        idle = False
        if established_t is None:
            if since_query < QUERY_INTERVAL_BEFORE_ESTABLISHED:
                return progress
        else:
            if progress.established_t is None:
                progress.established_t = established_t  # for the progress log
            self.last_busy_t = max(self.last_busy_t, established_t)
            idle = (
                self.idle_since is not None
                and now - max(self.idle_since, established_t) >= IDLE_WINDOW
            )
            if not idle and since_query < MAX_QUERY_INTERVAL:
                return progress
        peer = self._query()
        if peer is None:
            return progress
        state = peer.get("state", {})
        session = str(state.get("session_state", "")).lower()
        established = session in ("6", "established")
        received = sum(
            int(a.get("state", {}).get("received", 0) or 0) for a in peer.get("afi_safis") or []
        )
        progress.extra["accepted"] = sum(
            int(a.get("state", {}).get("accepted", 0) or 0) for a in peer.get("afi_safis") or []
        )
        progress.extra["queries"] = len(self.query_seconds)
        if not established:
            if progress.established_t is not None and progress.done_t is None:
                progress.extra["session_flaps"] = progress.extra.get("session_flaps", 0) + 1
            progress.established_t = None
            return progress
        if established_t is None:  # the monitor stream missed it: date it by this query
            established_t = self.last_query_t
            progress.extra["established_from"] = "poll"
        else:
            progress.extra["established_from"] = "gobgp monitor neighbor"
        progress.established_t = established_t
        progress.observe(self.last_query_t, received)
        if received >= self.expect and progress.done_t is None:
            if idle:
                progress.done_t = max(self.last_busy_t, established_t)
                progress.extra["done_from"] = "cpu idle"
            else:
                progress.done_t = self.last_query_t
                progress.extra["done_from"] = "poll"
        return progress


def _peer_address(peer: dict[str, Any]) -> str | None:
    for section in ("state", "conf"):
        value = peer.get(section, {}).get("neighbor_address")
        if value:
            return str(value)
    return None


RECEIVERS: dict[str, type[Receiver]] = {
    "triolb": TriolbReceiver,
    "exabgp": ExabgpReceiver,
    "gobgp": GobgpReceiver,
}
