"""Recent events worth an operator's attention (failovers, BGP session changes, commits,
health verdicts, services failing), for the API's timeline and the dashboard.

The journal is a logging handler on triolb's logger: the daemon already logs every such event
once, by name, with its fields (redacted, secrets scrubbed), so the journal keeps the
notable ones instead of every service reporting them twice. Records come from any thread
(worker threads log too), hence the lock; readers poll by sequence number.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import attrs

from .state import StateKey
from .structlog import SECRETS, attach_handler

__all__ = ["JOURNAL", "NOTABLE", "Journal", "JournalEntry"]

#: the events the journal keeps, by log event name
NOTABLE = frozenset(
    {
        # HA
        "ha_state",
        "ha_track",
        "ha_group_added",
        "ha_group_removed",
        "ha_group_changed",
        # BGP
        "bgp_established",
        "bgp_down",
        "bgp_notification_received",
        "bgp_admin_shutdown",
        "bgp_admin_enable",
        "bgp_peer_removed",
        "bgp_max_prefixes",
        # configuration
        "commit_applied",
        "commit_failed",
        "commit_rejected",
        "commit_confirmed",
        "commit_not_confirmed",
        "pool_conflicts",
        # operator actions through the API (who: the token's name)
        "api_action",
        # services, health, sync, the daemon
        "health_changed",
        "service_failed",
        "service_escalated",
        "sync_resynced",
        "sync_behind",
        "sync_peer_up",
        "sync_peer_down",
        "sync_events_lost",
        "daemon_ready",
        "daemon_stopping_on_escalation",
    }
)
#: entries kept (the oldest go first)
CAPACITY = 500


@attrs.frozen
class JournalEntry:
    seq: int
    time: float  # wall clock, seconds since the epoch
    level: str
    component: str
    event: str
    fields: dict[str, Any]


class Journal(logging.Handler):
    """The last `CAPACITY` notable events, numbered from 1."""

    def __init__(self, notable: frozenset[str] = NOTABLE, capacity: int = CAPACITY) -> None:
        super().__init__(logging.INFO)
        self._notable = notable
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._seq = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        event = record.getMessage()
        if event not in self._notable:
            return
        fields: dict[str, Any] = getattr(record, "fields", {})
        clean = {k: _scrubbed(v) for k, v in fields.items()}
        component = record.name.removeprefix("triolb").lstrip(".") or "daemon"
        with self._guard:
            self._seq += 1
            entry = JournalEntry(
                self._seq, record.created, record.levelname.lower(), component, event, clean
            )
            self._entries.append(entry)

    @property
    def last_seq(self) -> int:
        return self._seq

    def since(self, seq: int = 0, limit: int = CAPACITY) -> list[JournalEntry]:
        """Entries after ``seq``, oldest first, at most ``limit`` (the newest of them)."""
        with self._guard:
            found = [e for e in self._entries if e.seq > seq]
        return found[-limit:] if limit > 0 else []


def _scrubbed(value: Any) -> Any:
    """A field's value with known secret values replaced (as in the log lines)."""
    if isinstance(value, str):
        return SECRETS.scrub(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def open_journal() -> Journal:
    """A journal fed by triolb's logger (detach it with `close_journal`)."""
    journal = Journal()
    attach_handler(journal)
    return journal


def close_journal(journal: Journal) -> None:
    logging.getLogger("triolb").removeHandler(journal)


JOURNAL = StateKey[Journal]("daemon/journal")
