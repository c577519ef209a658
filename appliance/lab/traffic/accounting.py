"""Pure accounting for the traffic tools: echo-stream sequence tracking and HTTP error windows.

No sockets and no clock here: every method takes ``now`` (seconds, any monotonic origin).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import attrs

MAX_LISTED = 20  # cap on listed gaps / stalls / windows in a report


def collapse_ranges(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """``[1, 2, 3, 7, 9, 10]`` -> ``[(1, 3), (7, 7), (9, 10)]``."""
    ranges: list[tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], n)
        else:
            ranges.append((n, n))
    return ranges


# --- framing of stream messages -------------------------------------------------------------


def encode_message(stream: int, seq: int, size: int) -> bytes:
    """One message: ``"<seq> <stream> xxx…\\n"`` padded to ``size`` bytes (newline included)."""
    head = f"{seq} {stream} "
    if size < len(head) + 1:
        raise ValueError(f"message size {size} too small for {head!r}")
    return (head + "x" * (size - len(head) - 1) + "\n").encode()


class LineDecoder:
    """Splits received bytes into messages and yields their sequence numbers."""

    def __init__(self, max_line: int = 65536) -> None:
        self._buffer = bytearray()
        self._max_line = max_line

    def feed(self, data: bytes) -> list[int]:
        self._buffer += data
        seqs: list[int] = []
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > self._max_line:
                    raise ValueError("echoed line too long")
                return seqs
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            seqs.append(int(line.split(b" ", 1)[0]))

    def reset(self) -> None:
        self._buffer.clear()


# --- per-stream sequence accounting ------------------------------------------------------------


@attrs.frozen
class Stall:
    start: float
    duration: float


class StreamAccounting:
    """Tracks one echo stream: what was sent, what came back, gaps, stalls and resets.

    A *stall* is an interval longer than ``stall_threshold`` during which at least one message
    was outstanding and no echo arrived. A *gap* is a range of sequence numbers that were sent
    and never echoed (lost, e.g. on a reset connection, or still missing at the end).
    """

    def __init__(self, stream: int, stall_threshold: float) -> None:
        self.stream = stream
        self.stall_threshold = stall_threshold
        self.sent = 0
        self.echoed = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.unexpected = 0
        self.resets: list[tuple[float, str]] = []
        self.connects = 0
        self.connect_errors = 0
        self.connect_error_kinds: Counter[str] = Counter()
        self.stalls: list[Stall] = []
        self._outstanding: dict[int, float] = {}
        self._lost: set[int] = set()
        self._highest_echoed = -1
        self._waiting_since: float | None = None

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    def next_seq(self) -> int:
        return self.sent

    def on_connect(self) -> None:
        self.connects += 1

    def on_connect_error(self, kind: str = "error") -> None:
        self.connect_errors += 1
        self.connect_error_kinds[kind] += 1

    def on_sent(self, seq: int, now: float) -> None:
        if seq != self.sent:
            raise ValueError(f"stream {self.stream}: sent {seq}, expected {self.sent}")
        self.sent += 1
        if not self._outstanding:
            self._waiting_since = now
        self._outstanding[seq] = now

    def on_echo(self, seq: int, now: float) -> None:
        if seq not in self._outstanding:
            if seq in self._lost:
                self._lost.discard(seq)  # late echo of a message we gave up on
                self.echoed += 1
            elif 0 <= seq < self.sent:
                self.duplicates += 1
            else:
                self.unexpected += 1
            return
        del self._outstanding[seq]
        self.echoed += 1
        if seq < self._highest_echoed:
            self.out_of_order += 1
        self._highest_echoed = max(self._highest_echoed, seq)
        self._close_wait(now)
        self._waiting_since = now if self._outstanding else None

    def on_reset(self, now: float, reason: str) -> None:
        """The connection died (RST or unexpected EOF): everything outstanding is lost."""
        self.resets.append((now, reason))
        self._close_wait(now)
        self._waiting_since = None
        self._lost.update(self._outstanding)
        self._outstanding.clear()

    def finish(self, now: float) -> None:
        """End of the run: an unanswered wait counts as a stall; outstanding becomes missing."""
        self._close_wait(now)
        self._waiting_since = None
        self._lost.update(self._outstanding)
        self._outstanding.clear()

    def _close_wait(self, now: float) -> None:
        if self._waiting_since is None:
            return
        waited = now - self._waiting_since
        if waited > self.stall_threshold:
            self.stalls.append(Stall(self._waiting_since, waited))

    def missing(self) -> list[int]:
        return sorted(self._lost | set(self._outstanding))

    def report(self, origin: float = 0.0) -> dict[str, Any]:
        gaps = collapse_ranges(self.missing())
        longest = max((s.duration for s in self.stalls), default=0.0)
        return {
            "stream": self.stream,
            "sent": self.sent,
            "echoed": self.echoed,
            "missing": len(self.missing()),
            "gap_count": len(gaps),
            "gaps": [list(g) for g in gaps[:MAX_LISTED]],
            "stall_count": len(self.stalls),
            "longest_stall_ms": round(longest * 1000, 1),
            "stalls": [
                {"at_s": round(s.start - origin, 3), "ms": round(s.duration * 1000, 1)}
                for s in self.stalls[:MAX_LISTED]
            ],
            "resets": len(self.resets),
            "reset_events": [
                {"at_s": round(t - origin, 3), "reason": r} for t, r in self.resets[:MAX_LISTED]
            ],
            "connects": self.connects,
            "connect_errors": self.connect_errors,
            "connect_error_kinds": dict(sorted(self.connect_error_kinds.items())),
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "unexpected": self.unexpected,
        }


def stream_summary(streams: list[StreamAccounting], duration: float) -> dict[str, Any]:
    """Totals over all streams plus the per-stream reports; ``ok`` means a hitless run."""
    reports = [s.report() for s in streams]
    totals = {
        key: sum(int(r[key]) for r in reports)
        for key in ("sent", "echoed", "missing", "gap_count", "stall_count", "resets")
    }
    totals["connect_errors"] = sum(int(r["connect_errors"]) for r in reports)
    longest = max((float(r["longest_stall_ms"]) for r in reports), default=0.0)
    ok = (
        totals["missing"] == 0
        and totals["resets"] == 0
        and totals["stall_count"] == 0
        and totals["connect_errors"] == 0
        and totals["sent"] > 0
    )
    return {
        "ok": ok,
        "duration_s": round(duration, 3),
        "streams": len(streams),
        "totals": totals,
        "longest_stall_ms": longest,
        "per_stream": reports,
    }


# --- HTTP results and error windows -----------------------------------------------------------


@attrs.define
class ErrorWindow:
    start: float
    end: float
    failures: int
    first_error: str


class ErrorWindowTracker:
    """Groups consecutive failures (in completion order) into windows [first, last failure]."""

    def __init__(self) -> None:
        self.windows: list[ErrorWindow] = []
        self._open: ErrorWindow | None = None

    def record(self, ok: bool, now: float, error: str = "", started: float | None = None) -> None:
        """One finished request at ``now``; a new window starts at ``started`` (when the first
        failing request was issued) if given, else at ``now``."""
        if ok:
            self._open = None
            return
        if self._open is None:
            self._open = ErrorWindow(now if started is None else started, now, 0, error)
            self.windows.append(self._open)
        self._open.end = now
        self._open.failures += 1

    @property
    def in_window(self) -> bool:
        return self._open is not None


class HttpTally:
    """Counts of responses per endpoint name (the body), errors per kind, and error windows."""

    def __init__(self) -> None:
        self.by_endpoint: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.windows = ErrorWindowTracker()
        self.requests = 0

    def success(self, endpoint: str, now: float) -> None:
        self.requests += 1
        self.by_endpoint[endpoint] += 1
        self.windows.record(True, now)

    def failure(self, kind: str, now: float, started: float | None = None) -> None:
        self.requests += 1
        self.errors[kind] += 1
        self.windows.record(False, now, kind, started)

    def report(self, duration: float, origin: float = 0.0) -> dict[str, Any]:
        failed = sum(self.errors.values())
        return {
            "requests": self.requests,
            "ok": self.requests - failed,
            "failed": failed,
            "duration_s": round(duration, 3),
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
            "errors": dict(sorted(self.errors.items())),
            "error_windows": [
                {
                    "start_s": round(w.start - origin, 3),
                    "end_s": round(w.end - origin, 3),
                    "failures": w.failures,
                    "first_error": w.first_error,
                }
                for w in self.windows.windows[:MAX_LISTED]
            ],
            "error_window_count": len(self.windows.windows),
            "longest_error_window_s": round(
                max((w.end - w.start for w in self.windows.windows), default=0.0), 3
            ),
        }
