"""The configuration datastores' records: what was committed, when, by whom, and the
difference it made (pure, apart from `load_history` / `save_history`).

The running configuration is kept as its normalised YAML (`dump_config`): a diff between two
configurations is a unified diff of those texts, so it shows only what changed, in the
configuration's own words. Secrets are referenced by file name in the configuration (the
schema never holds a secret's value), so neither a diff nor the history ever contains one.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from .config import Config, dump_config

__all__ = [
    "HISTORY_SIZE",
    "CommitRecord",
    "config_diff",
    "load_history",
    "save_history",
    "with_record",
]

#: commits kept in the history (the oldest is dropped beyond this)
HISTORY_SIZE = 50


@attrs.frozen
class CommitRecord:
    """One change of the running configuration.

    ``origin``: who made it ("cli", "api", "sighup", "boot", "rollback", "confirm-timeout");
    ``outcome``: "committed", "pending-confirm" (a confirmed commit not yet confirmed),
    "confirmed", "rolled-back" (a confirmed commit undone by its timeout), "failed" (applying
    it failed; the previous configuration was restored); ``config``: the running
    configuration after it (normalised YAML), what `rollback` restores."""

    id: int
    time: float  # wall clock, seconds since the epoch
    origin: str
    comment: str | None
    diff: str
    config: str
    outcome: str = "committed"
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The record without its full configuration (what `history` lists)."""
        return {k: v for k, v in attrs.asdict(self).items() if k != "config"}


def config_diff(old: Config | None, new: Config, old_name: str = "running") -> str:
    """A unified diff of the normalised configurations ("" when equal)."""
    before = dump_config(old).splitlines(keepends=True) if old is not None else []
    after = dump_config(new).splitlines(keepends=True)
    return "".join(difflib.unified_diff(before, after, old_name, "candidate"))


def with_record(history: Sequence[CommitRecord], record: CommitRecord) -> list[CommitRecord]:
    """``history`` (newest first) with ``record`` in front, at most `HISTORY_SIZE` long."""
    return [record, *history][:HISTORY_SIZE]


def load_history(path: Path) -> list[CommitRecord]:
    """The saved history (newest first); empty when there is none or it cannot be read."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [CommitRecord(**item) for item in raw][:HISTORY_SIZE]
    except (OSError, ValueError, TypeError):
        return []


def save_history(path: Path, history: Sequence[CommitRecord]) -> None:
    """Write the history atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps([attrs.asdict(r) for r in history], indent=1))
    os.replace(temporary, path)
