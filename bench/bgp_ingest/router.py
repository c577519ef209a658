"""BIRD 2 as the sender: started in the lab's router namespace with a generated config holding
N static routes; its BGP session to the receiver is enabled for each receiver and disabled after,
so every receiver gets a fresh session fed from the same, fully loaded table."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from appliance.lab import bird, procs
from appliance.lab.api import LabHandle
from bgp_ingest.prefixes import BGP_PROTOCOL, STATIC_PROTOCOL, write_bird_conf
from bgp_ingest.procstat import cpu_ticks, read_status_kb

ROUTER_HOST = "router"
SOCKET_TIMEOUT = 20.0
BIRDC_TIMEOUT = 30.0
POLL_PERIOD = 0.25

_ROUTES_RE = re.compile(r"Routes:\s+(\d+) imported, (?:\d+ filtered, )?(\d+) exported")


class BirdRouter:
    def __init__(self, lab: LabHandle, count: int) -> None:
        self.lab = lab
        self.count = count
        self.conf = lab.log_dir / "bird-bench.conf"
        self.socket = str(lab.log_dir / "bird-bench.ctl")

    def birdc(self, command: str, timeout: float = BIRDC_TIMEOUT) -> str:
        return bird.birdc_in(self.lab.ns(ROUTER_HOST), self.socket, command, timeout)

    def start(self, load_timeout: float) -> float:
        """Write the config, start BIRD, wait until its static protocol holds all routes.
        Returns the seconds BIRD took to come up and load them."""
        write_bird_conf(self.conf, self.count)
        started = time.monotonic()
        self.lab.spawn(ROUTER_HOST, "bird", ["bird", "-f", "-c", str(self.conf), "-s", self.socket])
        self._wait_socket(started + SOCKET_TIMEOUT + load_timeout)
        deadline = started + load_timeout
        while time.monotonic() < deadline:
            imported, _exported = self.protocol_routes(STATIC_PROTOCOL)
            if imported >= self.count:
                return time.monotonic() - started
            self._check_alive()
            time.sleep(POLL_PERIOD)
        raise TimeoutError(f"BIRD did not load {self.count} routes in {load_timeout:.0f}s")

    def _wait_socket(self, deadline: float) -> None:
        last = "control socket not created"
        while time.monotonic() < deadline:
            self._check_alive()
            if Path(self.socket).exists():
                try:
                    self.birdc("show status", timeout=5.0)
                    return
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    last = str(exc)
            time.sleep(POLL_PERIOD)
        raise TimeoutError(f"BIRD control socket not ready: {last}")

    def _check_alive(self) -> None:
        if not self.lab.alive("bird"):
            raise RuntimeError(f"BIRD exited:\n{self.lab.log_tail('bird')}")

    def protocol_routes(self, protocol: str) -> tuple[int, int]:
        """(imported, exported) route counts of a BIRD protocol (0, 0 while it has none)."""
        out = self.birdc(f"show protocols all {protocol}")
        match = _ROUTES_RE.search(out)
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    def session_info(self) -> str:
        """The state/info columns of the BGP protocol line, e.g. ``up ... Established``."""
        for line in self.birdc(f"show protocols {BGP_PROTOCOL}").splitlines():
            if line.startswith(BGP_PROTOCOL):
                return " ".join(line.split()[3:])
        return "?"

    def enable_session(self) -> None:
        self.birdc(f"enable {BGP_PROTOCOL}")

    def disable_session(self) -> None:
        self.birdc(f"disable {BGP_PROTOCOL}")

    def version(self) -> str:
        out = self.birdc("show status")
        match = re.search(r"BIRD ([0-9][^\s]*)", out)
        return match.group(1) if match else "?"

    def cpu_ticks(self) -> int | None:
        return cpu_ticks(self.lab.process("bird").pid)

    def rss_mb(self) -> float | None:
        kb = read_status_kb(self.lab.process("bird").pid, "VmHWM")
        return None if kb is None else round(kb / 1024, 1)


class BirdWaker:
    """Keeps BIRD's main loop from idling while a receiver ingests.

    BIRD 2.0's main loop polls with a 3 s timeout when it has no event queued, and the final,
    partial UPDATE of the initial feed (and the End-of-RIB after it) can wait for that timeout:
    without a wake-up the last ~16 prefixes of 10,000 arrived exactly 3.0 s after the rest.
    One ``birdc`` stays connected inside the router namespace and is sent ``show status`` at
    every poll tick (~10 Hz), which wakes the loop; it costs BIRD microseconds per command.
    """

    MAX_WRITES = 100_000

    def __init__(self, router: BirdRouter) -> None:
        self.router = router
        self.proc: subprocess.Popen[bytes] | None = None
        self.writes = 0

    def start(self) -> None:
        argv = ["birdc", "-s", self.router.socket]
        self.proc = subprocess.Popen(
            procs.netns_command(self.router.lab.ns(ROUTER_HOST), argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wake(self) -> None:
        if self.proc is None or self.proc.stdin is None or self.writes >= self.MAX_WRITES:
            return
        try:
            self.proc.stdin.write(b"show status\n")
            self.proc.stdin.flush()
            self.writes += 1
        except OSError:  # birdc went away: stop waking, keep measuring
            self.stop()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=3.0)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=3.0)
