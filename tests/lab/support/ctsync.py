"""Helpers of the scenario-4 conntrack-sync failover lab tests, and their traffic tool.

The tool runs *inside* the client namespace as ``python -m tests.lab.support.ctsync streams
...`` (the lab puts this checkout on PYTHONPATH): up to 1000 long-lived TCP echo streams, each
sending ``"<seq> <stream>\\n"`` lines and checking every echo in order. One thread-free
``selectors`` loop drives every stream with non-blocking sockets, so a stalled stream never
stalls the others (nor their accounting). A stream is failed by a reset, an EOF, a wrong echo or
no echo for ``--stall-limit`` seconds (default 60 s: a failover through BGP stalls a stream for
the router's hold time plus TCP's retransmission back-off, well above the 3 s of
``tests.lab.support.dataplane``). Per stream it reports sent, echoed, lost / duplicated /
out-of-order / garbled lines, errors and the longest gap between two echoes; globally the
periods when no stream echoed anything. Bounded in count and total time; its status is a JSON
file rewritten twice a second, steered by a control file (``{"stop": true}``).

The test-side helpers derive the two nodes' configs from the scenario-4 examples, start the
daemons, and observe HA roles, BIRD's best route, sync and conntrack. Every wait is a bounded
poll.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from appliance.lab.api import LabHandle
from appliance.lab.examples import copy_example, daemon_argv
from tests.lab.support import polling
from tests.lab.support.bird_configs import BirdRoute, parse_routes
from tests.lab.support.dataplane import ToolRun

EXAMPLES = Path(__file__).parents[3] / "examples"
NODES = ("node1", "node2")
NODE_ADDRESSES = {"node1": "192.168.80.252", "node2": "192.168.80.253"}
VIP = "198.51.100.10"
PREFIX = f"{VIP}/32"
ECHO_TARGET = f"{VIP}:9000"
WEB_PORT = 80
MED = {"active": 10, "backup": 20}
#: compiling lb.c with bcc takes seconds, two nodes at once on a busy 2-core machine longer
DAEMON_READY_S = 120.0
WAIT_S = 30.0
#: a failover through BGP: master-down (~1 s) + hold time (9 s) + TCP back-off, generously
FAILOVER_S = 60.0
STATUS_INTERVAL_S = 0.5
STOP_DRAIN_S = 10.0


# --- configs and daemons -----------------------------------------------------------------------


def node_config(tmp_path: Path, node: str) -> Path:
    """``node``'s config: examples/scenario4-ctsync-<node>.yaml as shipped, written to
    ``tmp_path`` with its key and token files made absolute."""
    return copy_example("scenario4-ctsync", node, tmp_path)


def spawn_daemon(handle: LabHandle, node: str, config: Path, name: str) -> int:
    """Start ``node``'s daemon with the host's mounts (its pinned maps outlive a kill and
    ``dataplane flush`` can reach them); returns its pid without waiting."""
    return handle.spawn(node, name, daemon_argv(config), share_mounts=True)


def wait_daemon_ready(handle: LabHandle, name: str) -> None:
    handle.wait_for_log(name, '"dataplane_ready"', timeout=DAEMON_READY_S)
    handle.wait_for_log(name, '"daemon_ready"', timeout=WAIT_S)


def events(handle: LabHandle, name: str) -> list[dict[str, Any]]:
    """A daemon's JSON log events, in order."""
    lines = handle.log_path(name).read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def events_named(handle: LabHandle, name: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in events(handle, name) if e["event"] == kind]


def flush_dataplane(handle: LabHandle, node: str) -> str:
    """``triolb dataplane flush --node NODE`` in ``node``'s namespace with the host's mounts
    (where the daemon pinned its maps): its TC programs detached, its pins removed. Returns
    the command's output."""
    name = f"{node}-flush"
    argv = [sys.executable, "-m", "appliance", "dataplane", "flush", "--node", node]
    handle.spawn(node, name, argv, share_mounts=True)
    polling.wait_for(lambda: not handle.alive(name), f"{name} to finish", WAIT_S)
    return handle.log_path(name).read_text(errors="replace")


# --- observations ------------------------------------------------------------------------------


def show(handle: LabHandle, node: str, *args: str) -> Any:
    """``triolb show --json ARGS`` in ``node``'s namespace; None when it fails (no daemon)."""
    argv = [sys.executable, "-m", "appliance", "show", "--json", *args]
    result = handle.exec(node, argv, timeout=20)
    return json.loads(result.stdout) if result.returncode == 0 else None


def role(handle: LabHandle, node: str) -> str | None:
    """The role of ``node``'s one HA group (``active``, ``backup``...), None without a daemon."""
    body = show(handle, node, "ha")
    if body is None:
        return None
    (group,) = body["groups"]
    return str(group["role"])


def remote_count(handle: LabHandle, node: str) -> int:
    """How many connections ``node``'s dataplane holds as learnt from its peer."""
    body = show(handle, node, "conntrack", "--remote", "--count")
    return int(body["count"]) if body is not None else -1


def local_count(handle: LabHandle, node: str) -> int:
    body = show(handle, node, "conntrack", "--local", "--count")
    return int(body["count"]) if body is not None else -1


def service_packets(handle: LabHandle, node: str, service: str = "echo") -> int:
    """The packets ``node``'s dataplane forwarded for ``service`` (``show services``): proof of
    which node carried the streams."""
    body = show(handle, node, "services")
    assert body is not None, f"{node}: show services failed"
    (found,) = [s for s in body["services"] if s["name"] == service]
    return int(found["packets"])


def sync_status(handle: LabHandle, node: str) -> dict[str, Any] | None:
    body = show(handle, node, "sync")
    return body if isinstance(body, dict) else None


def bird_routes(handle: LabHandle) -> list[BirdRoute]:
    """BIRD's routes for the VIP (``show route <VIP>/32 all``); [] when it has none."""
    try:
        text = handle.birdc(f"show route {PREFIX} all")
    except RuntimeError as exc:  # "Network not found" makes birdc exit non-zero
        if "Network not found" in str(exc):
            return []
        raise
    return [r for r in parse_routes(text) if r.prefix == PREFIX]


def bird_best(handle: LabHandle) -> BirdRoute | None:
    best = [r for r in bird_routes(handle) if r.primary]
    return best[0] if best else None


def preferred_at_bird(handle: LabHandle, node: str) -> BirdRoute | None:
    """BIRD's best route for the VIP, if it goes via ``node`` with the active MED and no
    prepend."""
    best = bird_best(handle)
    if best is None or NODE_ADDRESSES[node] not in best.via:
        return None
    return best if best.med == MED["active"] and best.as_path == [65100] else None


def describe_bird(handle: LabHandle) -> str:
    return "\n".join(f"{r.header} via {r.via} {r.attributes}" for r in bird_routes(handle))


def link(handle: LabHandle, node: str, state: str) -> None:
    """``ip link set eth0 <state>`` in ``node`` (its one link: the cluster LAN)."""
    result = handle.exec(node, ["ip", "link", "set", "eth0", state], timeout=10)
    assert result.returncode == 0, result.stderr


# --- the streams tool, from the test's side ----------------------------------------------------


def tool_argv(command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.lab.support.ctsync", command, *args]


class Streams(ToolRun):
    """A ``streams`` tool running in the client: ``count`` echo streams to ``target``."""

    def __init__(
        self, handle: LabHandle, workdir: Path, name: str, target: str, count: int
    ) -> None:
        super().__init__(handle, workdir, name)
        self.count = count
        self.spawn(
            tool_argv(
                "streams",
                f"--target={target}",
                f"--count={count}",
                f"--status={self.status_path}",
                f"--control={self.control_path}",
            )
        )

    def describe(self) -> str:
        status = self.status()
        summary = {k: v for k, v in (status or {}).items() if k != "streams"}
        return f"{summary}\n{self.log()}"

    def wait(
        self,
        what: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = WAIT_S,
        interval: float = 0.25,
    ) -> dict[str, Any]:
        return super().wait(what, predicate, timeout, interval)

    def wait_connected(self) -> dict[str, Any]:
        return self.wait(
            f"{self.count} streams connected and echoing",
            lambda s: s["connected"] == self.count and s["min_echoed"] >= 1,
        )

    def echoed(self) -> dict[int, int]:
        """stream -> echoes received so far."""
        status = self.status()
        assert status is not None
        return {int(s["stream"]): int(s["echoed"]) for s in status["streams"]}

    def advance(self, messages: int, what: str, timeout: float = WAIT_S) -> dict[str, Any]:
        """Wait until every stream received ``messages`` more echoes than now (or failed)."""
        start = self.echoed()

        def moved(status: dict[str, Any]) -> bool:
            return status["done"] or all(
                s["echoed"] >= start[s["stream"]] + messages or s["error"]
                for s in status["streams"]
            )

        return self.wait(what, moved, timeout)

    def ports(self) -> list[int]:
        status = self.status()
        assert status is not None
        return [int(s["port"]) for s in status["streams"]]

    def stop(self) -> dict[str, Any]:
        """Stop sending, let the outstanding echoes arrive; the final report."""
        self.control(stop=True)
        return self.wait("the streams to stop", lambda s: s["done"], STOP_DRAIN_S + WAIT_S)


def broken(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The streams with any integrity problem: an error (reset, EOF, stall, refused), a lost,
    duplicated, out-of-order or garbled message."""
    bad_keys = ("lost", "duplicated", "out_of_order", "garbled")
    return [s for s in status["streams"] if s["error"] or any(s[k] for k in bad_keys)]


# --- the streams tool (runs inside the client namespace) ---------------------------------------


class _Stream:
    """One non-blocking echo connection. A message ``"<seq> <stream>\\n"`` is sent once the
    previous one came back and ``interval`` passed; every line read back is checked against
    the next sequence number expected."""

    def __init__(self, index: int, target: tuple[str, int], now: float) -> None:
        self.index = index
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = 0
        self.connected = False
        self.started = now
        self.sent = self.echoed = 0
        self.expected = 0  # the next sequence number an echo should carry
        self.lost = self.duplicated = self.out_of_order = self.garbled = 0
        self.outbox = b""
        self.inbox = b""
        self.error = ""
        self.last_echo = now  # or the connect time
        self.next_send = now
        self.max_gap = 0.0
        err = self.sock.connect_ex(target)
        if err not in (0, errno.EINPROGRESS):
            self.fail(f"connect: {errno.errorcode.get(err, err)}", now)

    @property
    def live(self) -> bool:
        return not self.error

    @property
    def waiting(self) -> bool:
        """A message is out (or buffered) and its echo has not come back yet."""
        return self.sent > self.echoed + self.lost

    def fail(self, reason: str, now: float) -> None:
        if not self.error:
            self.max_gap = max(self.max_gap, self.gap(now))  # the gap it died in, then frozen
            self.error = reason
            self.sock.close()

    def on_connected(self, now: float) -> None:
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(f"connect: {errno.errorcode.get(err, err)}", now)
            return
        self.connected = True
        self.port = self.sock.getsockname()[1]
        self.last_echo = self.next_send = now

    def queue_message(self, now: float, interval: float) -> None:
        if self.connected and self.live and not self.waiting and now >= self.next_send:
            self.outbox += f"{self.sent} {self.index}\n".encode()
            self.sent += 1
            self.next_send = now + interval

    def flush(self, now: float) -> None:
        if not self.outbox or not self.live:
            return
        try:
            n = self.sock.send(self.outbox)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(f"send: {type(exc).__name__}: {exc}", now)
            return
        self.outbox = self.outbox[n:]

    def read(self, now: float) -> None:
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(f"recv: {type(exc).__name__}: {exc}", now)
            return
        if not chunk:
            self.fail("eof", now)
            return
        self.inbox += chunk
        while b"\n" in self.inbox:
            line, _, self.inbox = self.inbox.partition(b"\n")
            self.check(line, now)

    def check(self, line: bytes, now: float) -> None:
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit() or fields[1] != str(self.index).encode():
            self.garbled += 1
            return
        seq = int(fields[0])
        if seq == self.expected:
            self.echoed += 1
            self.expected += 1
        elif seq > self.expected:  # messages in between never came back
            self.lost += seq - self.expected
            self.echoed += 1
            self.expected = seq + 1
        elif seq >= self.sent:
            self.garbled += 1
        else:  # an older message again: a duplicate, or one that overtook its predecessor
            self.duplicated += 1
            self.out_of_order += 1
        self.max_gap = max(self.max_gap, now - self.last_echo)
        self.last_echo = now

    def check_stall(self, now: float, limit: float) -> None:
        if not self.live:
            return
        if not self.connected and now - self.started > limit:
            self.fail("connect: timeout", now)
        elif self.waiting and now - self.last_echo > limit:
            self.fail(f"stalled: no echo for {now - self.last_echo:.1f}s", now)

    def gap(self, now: float) -> float:
        """The current gap: time since the last echo while one is awaited."""
        return now - self.last_echo if self.live and self.connected and self.waiting else 0.0

    def report(self, now: float) -> dict[str, Any]:
        return {
            "stream": self.index,
            "port": self.port,
            "sent": self.sent,
            "echoed": self.echoed,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "garbled": self.garbled,
            "error": self.error,
            "max_gap_s": round(max(self.max_gap, self.gap(now)), 3),
        }


class _Quiet:
    """Periods in which no stream received any echo (a failover's stall, seen globally)."""

    def __init__(self, threshold: float, start: float) -> None:
        self.threshold = threshold
        self.start = start
        self.last = start
        self.periods: list[tuple[float, float]] = []  # (start since the tool started, length)

    def echo(self, now: float) -> None:
        if now - self.last >= self.threshold:
            self.periods.append((round(self.last - self.start, 3), round(now - self.last, 3)))
        self.last = now


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def _status(
    streams: Sequence[_Stream], quiet: _Quiet, now: float, started: float, done: bool
) -> dict[str, Any]:
    reports = [s.report(now) for s in streams]
    return {
        "elapsed_s": round(now - started, 3),
        "connected": sum(1 for s in streams if s.connected and s.live),
        "failed": sum(1 for s in streams if s.error),
        "sent": sum(s.sent for s in streams),
        "echoed": sum(s.echoed for s in streams),
        "min_echoed": min((s.echoed for s in streams), default=0),
        "max_gap_s": max((r["max_gap_s"] for r in reports), default=0.0),
        "current_gap_s": round(max((s.gap(now) for s in streams if s.live), default=0.0), 3),
        "quiet_periods": quiet.periods,
        "done": done,
        "streams": reports,
    }


def _cmd_streams(args: argparse.Namespace) -> dict[str, Any]:
    """Open ``--count`` streams (all at once, non-blocking), then exchange messages until the
    control file says stop or ``--max-seconds`` pass; after a stop, wait up to
    ``--drain-seconds`` for the outstanding echoes."""
    host, port = args.target.rsplit(":", 1)
    target = (host, int(port))
    status_path, control_path = Path(args.status), Path(args.control)
    started = time.monotonic()
    deadline = started + args.max_seconds
    sel = selectors.DefaultSelector()
    streams: list[_Stream] = []
    registered: set[int] = set()
    for i in range(args.count):
        stream = _Stream(i, target, time.monotonic())
        streams.append(stream)
        if stream.live:
            sel.register(stream.sock, selectors.EVENT_WRITE, stream)
            registered.add(i)
    quiet = _Quiet(args.quiet_threshold, started)
    stopping_at: float | None = None
    next_status = started
    while True:
        now = time.monotonic()
        if stopping_at is None and now >= next_status:
            try:
                command = json.loads(control_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                command = {}
            if command.get("stop") or now >= deadline:
                stopping_at = now
        if stopping_at is not None and (
            now - stopping_at >= args.drain_seconds
            or not any(s.live and s.waiting for s in streams)
        ):
            break
        for key, mask in sel.select(timeout=0.02):
            stream = key.data
            if not stream.connected and mask & selectors.EVENT_WRITE:
                stream.on_connected(now)
            if stream.live and mask & selectors.EVENT_READ:
                before = stream.echoed
                stream.read(now)
                if stream.echoed > before:
                    quiet.echo(now)
        for stream in streams:
            if not stream.live:
                if stream.index in registered:  # its socket is closed: forget it
                    registered.discard(stream.index)
                    sel.unregister(stream.sock)
                continue
            if stopping_at is None:
                stream.queue_message(now, args.interval)
            stream.flush(now)
            stream.check_stall(now, args.stall_limit)
            if stream.live and stream.connected:
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if stream.outbox else 0)
                if sel.get_key(stream.sock).events != wanted:
                    sel.modify(stream.sock, wanted, stream)
        if now >= next_status:
            _write_json(status_path, _status(streams, quiet, now, started, False))
            next_status = now + STATUS_INTERVAL_S
    now = time.monotonic()
    report = _status(streams, quiet, now, started, True)
    for stream in streams:
        if stream.live:
            stream.sock.close()
    sel.close()
    _write_json(status_path, report)
    return {k: v for k, v in report.items() if k != "streams"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.lab.support.ctsync")
    sub = parser.add_subparsers(dest="command", required=True)
    streams = sub.add_parser("streams", help="long-lived TCP echo streams, checked in order")
    streams.add_argument("--target", required=True, help="ADDRESS:PORT of a TCP echo service")
    streams.add_argument("--count", type=int, required=True, choices=range(1, 1001))
    streams.add_argument("--status", required=True, help="JSON status file, rewritten")
    streams.add_argument("--control", required=True, help='control file: {"stop": true}')
    streams.add_argument("--interval", type=float, default=0.1, help="per stream, seconds")
    streams.add_argument("--stall-limit", type=float, default=60.0)
    streams.add_argument("--quiet-threshold", type=float, default=0.5)
    streams.add_argument("--drain-seconds", type=float, default=STOP_DRAIN_S)
    streams.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    if not 0 < args.max_seconds <= 3600 or not 0.001 <= args.interval <= 60:
        parser.error("--max-seconds must be in (0, 3600], --interval in [0.001, 60]")
    print(json.dumps(_cmd_streams(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
