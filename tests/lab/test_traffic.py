"""The traffic tools against the lab's endpoint servers (no load balancer yet)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from appliance.lab.api import LabHandle, lab_up
from appliance.lab.scenarios import ENDPOINT_ADDRESSES
from tests.lab.conftest import dump_logs
from tests.lab.helpers import run_tool

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def routed_lab() -> Iterator[LabHandle]:
    handle = lab_up("scenario2", start_router=False)
    try:
        yield handle
    finally:
        dump_logs(handle)
        handle.down()


def test_stream_client_healthy_path_has_no_gaps_or_resets(routed_lab: LabHandle) -> None:
    report = run_tool(
        routed_lab,
        "client",
        "stream_client",
        "--host=192.168.80.101",
        "--port=9000",
        "--streams=6",
        "--rate=50",
        "--duration=1.5",
        "--stall-ms=500",
    )
    totals = report["totals"]
    assert report["ok"], report
    assert report["streams"] == 6
    assert totals["sent"] >= 6 * 50  # ~75 per stream at 50/s for 1.5 s
    assert totals["echoed"] == totals["sent"]
    assert totals["missing"] == totals["gap_count"] == totals["resets"] == 0
    assert all(s["connects"] == 1 and s["gaps"] == [] for s in report["per_stream"])


def test_stream_client_stops_at_count(routed_lab: LabHandle) -> None:
    report = run_tool(
        routed_lab, "node1", "stream_client",
        "--host=192.168.80.102", "--port=9000", "--streams=2", "--rate=200",
        "--count=25", "--duration=30",
    )  # fmt: skip
    assert report["ok"]
    assert [s["sent"] for s in report["per_stream"]] == [25, 25]
    assert report["duration_s"] < 5


def test_http_loop_names_each_endpoint(routed_lab: LabHandle) -> None:
    for name, address in ENDPOINT_ADDRESSES.items():
        report = run_tool(
            routed_lab, "client", "http_loop", f"http://{address}:8080/",
            "--count=30", "--duration=10", "--concurrency=3",
        )  # fmt: skip
        assert report["by_endpoint"] == {name: 30}
        assert report["failed"] == 0 and report["error_windows"] == []


def _stream_report(handle: LabHandle, path: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as fh:
                report: dict[str, Any] = json.loads(fh.read())
            return report
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    raise TimeoutError(f"no report at {path}")


def test_stream_client_counts_resets_when_the_server_dies(
    lab_factory: Callable[..., LabHandle],
) -> None:
    handle = lab_factory("scenario1")
    output = str(handle.log_dir / "streams.json")
    handle.spawn(
        "client",
        "streams",
        [
            sys.executable, "-m", "appliance.lab.traffic.stream_client",
            "--host=192.168.80.103", "--port=9000", "--streams=3", "--rate=100",
            "--duration=1.5", f"--output={output}",
        ],
    )  # fmt: skip
    time.sleep(0.6)
    handle.stop("ep3-server")
    report = _stream_report(handle, output)
    assert not report["ok"]
    assert report["totals"]["resets"] == 3
    assert all(s["reset_events"] for s in report["per_stream"])
    assert report["totals"]["echoed"] > 0


def test_http_loop_reports_error_window(lab_factory: Callable[..., LabHandle]) -> None:
    handle = lab_factory("scenario1")
    handle.stop("ep2-server")
    report = run_tool(
        handle, "client", "http_loop", "http://192.168.80.102:8080/",
        "--count=5", "--duration=10", "--timeout=1",
    )  # fmt: skip
    assert report["requests"] == 5 and report["ok"] == 0
    assert report["errors"] == {"econnrefused": 5}
    assert report["error_window_count"] == 1
    assert report["error_windows"][0]["failures"] == 5
