from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))

BAD = """\
node:
  name: n1
  id: 1
services:
  - name: web
    vip: 10.0.0.1
    port: 80
    endpoints:
      - address: 10.0.0.2
        wieght: 3
"""


def test_validate_accepts_every_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert len(EXAMPLES) == 8
    assert main(["config", "validate", *map(str, EXAMPLES)]) == 0
    assert capsys.readouterr().out.count(": valid") == 8


def test_validate_rejects_unknown_key_naming_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    proc = subprocess.run(
        [sys.executable, "-m", "appliance", "config", "validate", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "services[0].endpoints[0].wieght (line 10): unknown key" in proc.stdout


def test_validate_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "validate", str(tmp_path / "nope.yaml")]) == 2


def test_show_prints_normalised_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", str(EXAMPLES[0])]) == 0
    out = capsys.readouterr().out
    assert "node:" in out
    assert "selection:" in out  # defaults are filled in
