"""One throughput run: an iperf3 one-off server in ep1, the iperf3 client in the client.

The client connects to the variant's target (the VIP, or ep1 itself for ``direct``), sends for
``seconds`` after ``omit`` seconds of warm-up (TCP slow start is left out), and reports in JSON;
the figure is ``end.sum_received.bits_per_second``: what the server received.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

from appliance.lab.api import LabHandle

from .paths import CLIENT, ENDPOINTS, IPERF_PORT, THROUGHPUT_ENDPOINT, wait_listening

SERVER_READY_S = 10.0
CLIENT_GRACE_S = 20.0


@attrs.frozen
class ThroughputSpec:
    seconds: int
    omit: int
    streams: int
    #: CPUs of the iperf3 client and server (``-A``), or None: wherever the scheduler puts them
    affinity: tuple[int, int] | None = None


def run_throughput(lab: LabHandle, target: str, spec: ThroughputSpec, label: str) -> dict[str, Any]:
    """One iperf3 run to ``target``:5201; returns ``gbps`` and details, or raises RuntimeError."""
    server = f"iperf3-{label}"
    bind = ENDPOINTS[THROUGHPUT_ENDPOINT]
    lifetime = spec.seconds + spec.omit + CLIENT_GRACE_S
    pin_client, pin_server = (
        (["-A", str(spec.affinity[0])], ["-A", str(spec.affinity[1])])
        if spec.affinity
        else ([], [])
    )
    lab.spawn(
        THROUGHPUT_ENDPOINT,
        server,
        [
            "iperf3",
            "-s",
            "-1",
            "-B",
            bind,
            "-p",
            str(IPERF_PORT),
            "--idle-timeout",
            "60",
            *pin_server,
        ],
    )
    try:
        wait_listening(lab, THROUGHPUT_ENDPOINT, IPERF_PORT, server, SERVER_READY_S)
        argv = [
            "iperf3",
            "-c",
            target,
            "-p",
            str(IPERF_PORT),
            "-t",
            str(spec.seconds),
            "-O",
            str(spec.omit),
            "-P",
            str(spec.streams),
            "--connect-timeout",
            "3000",
            *pin_client,
            "-J",
        ]
        started = time.monotonic()
        result = lab.exec(CLIENT, argv, timeout=lifetime)
        wall = time.monotonic() - started
    finally:
        lab.stop(server)  # the one-off server has exited by now; this also forgets its record
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        raise RuntimeError(
            f"iperf3 gave no JSON (exit {result.returncode}): {result.stderr.strip()[:300]}"
        ) from None
    if "error" in report:
        raise RuntimeError(f"iperf3: {report['error']}")
    end = report["end"]
    received = end["sum_received"]
    cpu = end.get("cpu_utilization_percent", {})
    return {
        "gbps": round(received["bits_per_second"] / 1e9, 3),
        "sent_gbps": round(end["sum_sent"]["bits_per_second"] / 1e9, 3),
        "retransmits": end["sum_sent"].get("retransmits"),
        "seconds": round(received["seconds"], 2),
        "client_cpu_pct": round(cpu.get("host_total", 0.0), 1),
        "server_cpu_pct": round(cpu.get("remote_total", 0.0), 1),
        "wall_s": round(wall, 2),
    }
