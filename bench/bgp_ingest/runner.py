"""Run one receiver against the loaded BIRD and measure it."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from appliance.lab.api import LabHandle
from bgp_ingest.prefixes import BGP_PROTOCOL
from bgp_ingest.procstat import CLK_TCK, RssSampler
from bgp_ingest.receivers import RECEIVER_HOST, GobgpReceiver, Progress, Receiver, RunSpec
from bgp_ingest.router import BirdRouter, BirdWaker

POLL_PERIOD = 0.1  # ~10 Hz
REPORT_PERIOD = 5.0
MILESTONES = (0.25, 0.5, 0.75)
BGP_PORT = 179
PORT_FREE_TIMEOUT = 15.0


def log(message: str) -> None:
    print(f"bgp_ingest: {message}", file=sys.stderr, flush=True)


def milestones(progress: Progress, expect: int) -> dict[str, float]:
    """Seconds after Established of the first progress line showing 25/50/75 % of the prefixes
    (resolution: the receiver's progress period, 0.25 s for ExaBGP's counter, ~0.5 s for
    triolb's)."""
    out: dict[str, float] = {}
    if progress.established_t is None:
        return out
    for fraction in MILESTONES:
        for t, received in progress.samples:
            if t >= progress.established_t and received >= fraction * expect:
                out[f"{int(fraction * 100)}%"] = round(t - progress.established_t, 3)
                break
    return out


def run_receiver(
    receiver: Receiver, lab: LabHandle, router: BirdRouter, spec: RunSpec
) -> dict[str, Any]:
    """Start ``receiver``, enable BIRD's session, poll until it holds ``spec.expect`` prefixes,
    it fails, or ``spec.timeout`` passes; then disable the session and stop the receiver."""
    result: dict[str, Any] = {}
    sampler = RssSampler()
    waker = BirdWaker(router)
    started = time.monotonic()
    deadline = started + spec.timeout
    try:
        receiver.start(lab, spec)
        waker.start()
        bird_ticks = router.cpu_ticks()
        router.enable_session()
        progress = receiver.poll()
        next_report = started + REPORT_PERIOD
        polls = 0
        max_polls = int(spec.timeout / POLL_PERIOD) + 100
        while polls < max_polls:
            polls += 1
            tick = time.monotonic()
            waker.wake()
            progress = receiver.poll()
            sampler.sample(receiver.pids())
            if progress.done_t is not None or progress.failure is not None:
                break
            if progress.timed_out:
                break
            if not receiver.alive():
                progress = receiver.poll()  # what it wrote before it exited
                if progress.done_t is None and not progress.timed_out:
                    progress.failure = "receiver process exited"
                break
            if tick >= deadline:
                break
            if tick >= next_report:
                next_report = tick + REPORT_PERIOD
                if progress.established_t is None:
                    status = "connecting"
                elif receiver.reports_progress:
                    status = f"Established, {progress.received}/{spec.expect} prefixes"
                else:
                    status = "Established, ingesting (not asked for its count while busy)"
                log(f"{receiver.name}: {status}, {tick - started:.0f}s")
            time.sleep(max(0.0, tick + POLL_PERIOD - time.monotonic()))
        sampler.sample(receiver.pids())
        bird_ticks_end = router.cpu_ticks()
        result["received"] = progress.received
        if progress.established_t is not None:
            result["established_after_start_s"] = round(progress.established_t - started, 3)
        if progress.done_t is not None and progress.established_t is not None:
            seconds = progress.done_t - progress.established_t
            result["seconds"] = round(seconds, 3)
            result["timeout"] = False
            result["prefixes_per_s"] = round(spec.expect / seconds) if seconds > 0 else None
            if receiver.reports_progress:
                result["milestones_s"] = milestones(progress, spec.expect)
        elif progress.failure is not None:
            result["seconds"] = None
            result["timeout"] = False
            result["error"] = progress.failure
            result["log_tail"] = receiver.log_tail()
        else:
            result["seconds"] = None
            result["timeout"] = True
            result["timeout_s"] = spec.timeout
            count = receiver.count_now()
            if count is not None:
                result["received"] = count
            if progress.established_t is None:
                result["error"] = "no Established session before the timeout"
                result["log_tail"] = receiver.log_tail()
        result.update(progress.extra)
        # Whole run, start to end of polling: shows who was CPU-bound (2 cores in all).
        result["cpu_s"] = sampler.cpu_s()
        if bird_ticks is not None and bird_ticks_end is not None:
            result["bird_cpu_s"] = round((bird_ticks_end - bird_ticks) / CLK_TCK, 2)
        if isinstance(receiver, GobgpReceiver) and receiver.query_seconds:
            result["query_latency_mean_s"] = round(
                sum(receiver.query_seconds) / len(receiver.query_seconds), 4
            )
        # Cross-check from the sender, while the session is still up (the triolb receiver
        # closes it as soon as it is done).
        try:
            if router.session_info().startswith("up"):
                result["bird_exported"] = router.protocol_routes(BGP_PROTOCOL)[1]
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result["bird_exported"] = f"? ({exc})"
    finally:
        result["rss_mb"] = sampler.hwm_sum_mb()
        result["rss_peak_sampled_mb"] = sampler.peak_mb()
        result["rss_by_process_mb"] = sampler.by_process_mb()
        try:
            waker.stop()
            router.disable_session()
        finally:
            receiver.stop()
        if not wait_port_free(lab, BGP_PORT, PORT_FREE_TIMEOUT):
            result["warning"] = f"port {BGP_PORT} still listened on in {RECEIVER_HOST} after stop"
        result["wall_s"] = round(time.monotonic() - started, 1)
    return result


def wait_port_free(lab: LabHandle, port: int, timeout: float) -> bool:
    """Wait until nothing in the receiver namespace listens on ``port`` (the next receiver
    binds it): a stopped receiver holding 1+ GB can take a moment to go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            out = lab.exec(RECEIVER_HOST, ["ss", "-Hltn", f"sport = :{port}"], timeout=5.0)
        except subprocess.TimeoutExpired:
            continue
        if out.returncode == 0 and not out.stdout.strip():
            return True
        time.sleep(0.2)
    return False
