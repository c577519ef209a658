"""The shipped example configurations as a lab node runs them: copied to a work directory with
their secret files named absolutely (they are relative to the example), and the daemon's
command line. Shared by the demo and the lab tests."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["EXAMPLES", "copy_example", "daemon_argv"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def copy_example(
    stem: str,
    node: str,
    workdir: Path,
    *,
    config_dir: Path = EXAMPLES,
    ha_overrides: Mapping[str, Any] | None = None,
) -> Path:
    """``<config_dir>/<stem>-<node>.yaml`` written to ``<workdir>/<node>.yaml`` with its HA key,
    sync key and web token files as absolute paths; ``ha_overrides`` (e.g. timings) set keys of
    every HA group."""
    tree: dict[str, Any] = yaml.safe_load((config_dir / f"{stem}-{node}.yaml").read_text())

    def absolute(value: str) -> str:
        return str((config_dir / value).resolve())

    for group in tree.get("ha", {}).get("groups", []):
        if "auth_key_file" in group:
            group["auth_key_file"] = absolute(group["auth_key_file"])
        group.update(ha_overrides or {})
    for section, key in (("sync", "key_file"), ("web", "token_file")):
        if key in (tree.get(section) or {}):
            tree[section][key] = absolute(tree[section][key])
    path = workdir / f"{node}.yaml"
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def daemon_argv(config: Path) -> list[str]:
    """``triolb run`` with JSON logs, as the lab starts a node's daemon."""
    return [
        sys.executable,
        "-m",
        "appliance",
        "run",
        "--config",
        str(config),
        "--log-format",
        "json",
    ]
