"""An HA group's authentication keys, read from its ``auth_key_file``.

The file holds one key per line (surrounding blanks ignored, blank lines skipped):

* the first line is the key adverts are signed with;
* an optional second line is a key still accepted — during a rotation.

Each key's id (carried in the advert trailer) is derived from the key itself — the first byte
of its SHA-256 — so a key keeps its id whichever line it is on. A rotation without a moment
where two nodes disagree is three reloads, each done on every node before the next:
``old`` + ``new`` (sign old, accept new), then ``new`` + ``old`` (sign new, accept old), then
``new`` alone.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import wire
from .errors import HaError, HaErrorReason

__all__ = ["MAX_KEYS", "key_id", "parse_auth_keys", "read_auth_keys"]

MAX_KEYS = 2


def key_id(secret: bytes) -> int:
    """The id a key is known by on the wire."""
    return hashlib.sha256(secret).digest()[0]


def parse_auth_keys(text: bytes, source: str = "key file") -> wire.AuthKeys:
    """The keys in a key file's contents; `HaError` (bad-config) when there are none, more
    than two, or two whose ids collide (replace one of them)."""
    secrets = [line.strip() for line in text.splitlines() if line.strip()]
    if not secrets:
        raise HaError(HaErrorReason.BAD_CONFIG, f"{source}: no key")
    if len(secrets) > MAX_KEYS:
        raise HaError(
            HaErrorReason.BAD_CONFIG,
            f"{source}: {len(secrets)} keys; at most {MAX_KEYS} (signing, then previous)",
        )
    keys = [wire.AuthKey(key_id(secret), secret) for secret in secrets]
    if len(keys) == MAX_KEYS:
        current, previous = keys
        if current.id == previous.id:
            raise HaError(
                HaErrorReason.BAD_CONFIG,
                f"{source}: both keys have id {current.id}; choose another new key",
            )
        return wire.AuthKeys(current, previous)
    return wire.AuthKeys(keys[0])


def read_auth_keys(path: Path) -> wire.AuthKeys:
    """Read and parse ``path`` (blocking; `HaError` also when it cannot be read)."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise HaError(HaErrorReason.BAD_CONFIG, f"{path}: {exc.strerror}") from exc
    return parse_auth_keys(text, str(path))
