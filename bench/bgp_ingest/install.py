"""Idempotent installs the bench performs itself (each step is skipped when already done).

- Debian: ``apt-get update -qq && apt-get install -y -qq --no-install-recommends bird2 gobgpd``
  only for packages ``dpkg-query`` does not show as installed (``make setup`` normally has them).
- ExaBGP: its own venv ``bench/.venv-exabgp`` (``/usr/bin/python3 -m venv``, then
  ``pip install exabgp==<EXABGP_VERSION>``), so the project's ``.venv`` stays exactly what
  ``pyproject.toml`` says. A stamp file records the installed version; a ``.gitignore`` holding
  ``*`` keeps the venv out of git (and out of ruff, which honours .gitignore).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

EXABGP_VERSION = "5.0.15"
BENCH_DIR = Path(__file__).resolve().parents[1]
EXABGP_VENV = BENCH_DIR / ".venv-exabgp"
APT_TIMEOUT = 900.0
PIP_TIMEOUT = 600.0


def log(message: str) -> None:
    print(f"bgp_ingest: {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], timeout: float) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )


def debian_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, timeout=30
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def ensure_debian(packages: list[str]) -> None:
    missing = [p for p in packages if not debian_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise PermissionError(f"need root to apt-get install {' '.join(missing)}")
    log(f"installing Debian packages: {' '.join(missing)}")
    env_prefix = ["env", "DEBIAN_FRONTEND=noninteractive"]
    _run([*env_prefix, "apt-get", "update", "-qq"], APT_TIMEOUT)
    _run(
        [*env_prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        APT_TIMEOUT,
    )


def _base_python() -> str:
    for candidate in ("/usr/bin/python3", os.path.join(sys.base_prefix, "bin", "python3")):
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no base python3 to create the ExaBGP venv with")


def ensure_exabgp(version: str = EXABGP_VERSION, venv: Path = EXABGP_VENV) -> Path:
    """Create/refresh the ExaBGP venv when needed; returns its ``python``."""
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == version:
        return python
    if not python.exists():
        if venv.exists():
            shutil.rmtree(venv)
        log(f"creating {venv}")
        _run([_base_python(), "-m", "venv", str(venv)], PIP_TIMEOUT)
    (venv / ".gitignore").write_text("# created by bench/bgp_ingest.py\n*\n")
    log(f"installing exabgp=={version} into {venv}")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"exabgp=={version}",
        ],
        PIP_TIMEOUT,
    )
    stamp.write_text(version + "\n")
    return python
