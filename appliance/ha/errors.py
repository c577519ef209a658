"""The one error type of the HA protocol cores."""

from __future__ import annotations

import enum


class HaErrorReason(enum.StrEnum):
    """Why a packet (or a configuration handed to a core) was rejected."""

    TRUNCATED = "truncated"
    BAD_VERSION = "bad-version"
    BAD_TYPE = "bad-type"
    BAD_VRID = "bad-vrid"
    BAD_LENGTH = "bad-length"
    BAD_CHECKSUM = "bad-checksum"
    BAD_ADDRESS_COUNT = "bad-address-count"
    BAD_INTERVAL = "bad-interval"
    BAD_ADDRESS_FAMILY = "bad-address-family"
    BAD_TTL = "bad-ttl"
    AUTH_MISSING = "auth-missing"
    AUTH_TRUNCATED = "auth-truncated"
    AUTH_UNKNOWN_KEY = "auth-unknown-key"
    AUTH_FORGED = "auth-forged"
    AUTH_REPLAYED = "auth-replayed"
    BAD_CONFIG = "bad-config"


class HaError(Exception):
    """A malformed, unauthenticated or replayed advertisement, or an unusable configuration."""

    def __init__(self, reason: HaErrorReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail
