"""State-store keys shared by the daemon and its services."""

from __future__ import annotations

from .config import Config
from .state import StateKey

RUNNING_CONFIG = StateKey[Config]("config/running")
CONFIG_GENERATION = StateKey[int]("config/generation")
#: Successful reloads so far, changed or not: services re-read the files the config names
#: (keys) on each, since a file can change while the config does not.
RELOADS = StateKey[int]("config/reloads")
#: Set by conntrack sync once its bulk resync from the peers is complete (HA's join gate).
SYNC_RESYNCED = StateKey[bool]("sync/resynced")
