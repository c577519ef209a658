"""State-store keys shared by the daemon and its services."""

from __future__ import annotations

from .config import Config
from .state import StateKey

RUNNING_CONFIG = StateKey[Config]("config/running")
CONFIG_GENERATION = StateKey[int]("config/generation")
