"""The demo brings scenario 2 up, starts the appliance on both nodes, and always tears down."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest

from appliance.lab import netbuild
from appliance.lab.demo import DEMO_SCENARIO, run_demo

pytestmark = pytest.mark.lab


def _demo_namespaces_left(output: str) -> list[str]:
    match = re.search(r"^lab (tlb[0-9a-f]{4}) ", output, re.MULTILINE)
    assert match, output
    return [ns for ns in netbuild.lab_namespaces() if ns.startswith(f"{match.group(1)}-")]


def test_demo_without_configs_reports_and_tears_down(tmp_path: Path) -> None:
    out = io.StringIO()
    started = time.monotonic()
    assert run_demo(tmp_path, max_seconds=0.5, out=out) == 0
    assert time.monotonic() - started < 10
    text = out.getvalue()
    assert "node1: no config" in text and "node2: no config" in text
    assert "ip netns exec tlb" in text and "birdc" in text and "192.168.80.101:8080" in text
    assert "removed (8 namespaces)" in text
    assert _demo_namespaces_left(text) == []


def test_demo_starts_the_appliance_in_the_node_namespaces(tmp_path: Path) -> None:
    for node in ("node1", "node2"):
        # Deliberately invalid: the real `python -m appliance run` starts and rejects it.
        (tmp_path / f"{DEMO_SCENARIO}-{node}.yaml").write_text("not: [valid\n")
    out = io.StringIO()
    assert run_demo(tmp_path, max_seconds=1.0, out=out) == 0
    text = out.getvalue()
    assert "node1-appliance" in text and "node2-appliance" in text
    assert "removed (8 namespaces)" in text
    assert _demo_namespaces_left(text) == []
