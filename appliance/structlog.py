"""Structured logging: one event name plus key/values, as text or JSON, secrets redacted.

Only the Trio shells and the daemon log; protocol cores return events instead.

    log = get_logger("bgp")
    log.info("session_established", peer="192.168.80.254", asn=65101)
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, Literal

LogFormat = Literal["text", "json"]

#: Keys whose values are never printed, whatever they hold.
SECRET_KEY_PARTS = ("password", "secret", "token", "key_material", "psk", "hmac_key")
REDACTED = "***"

_ROOT = "triolb"


class SecretRegistry:
    """Values known to be secret (file contents read by services); replaced wherever they occur."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: str | bytes) -> None:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        text = text.strip()
        if len(text) >= 4:  # too short a value would redact ordinary text
            self._values.add(text)

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


SECRETS = SecretRegistry()


def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def _render_value(value: object) -> object:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [_render_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _render_value(v) for k, v in value.items()}
    return str(value)


def redact_fields(fields: dict[str, object]) -> dict[str, object]:
    """Drop secret-named keys' values and render everything else JSON-friendly."""
    return {
        key: REDACTED if _is_secret_key(key) else _render_value(value)
        for key, value in fields.items()
    }


class StructuredFormatter(logging.Formatter):
    def __init__(self, fmt: LogFormat) -> None:
        super().__init__()
        self._fmt = fmt

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = getattr(record, "fields", {})
        component = record.name.removeprefix(_ROOT).lstrip(".") or "daemon"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        stamp += f".{int(record.msecs):03d}Z"
        if self._fmt == "json":
            doc: dict[str, Any] = {
                "ts": stamp,
                "level": record.levelname.lower(),
                "component": component,
                "event": record.getMessage(),
                **fields,
            }
            if record.exc_info:
                doc["exception"] = self.formatException(record.exc_info)
            line = json.dumps(doc, sort_keys=False, default=str)
        else:
            kv = " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
            line = f"{stamp} {record.levelname:<7} {component:<10} {record.getMessage()}"
            if kv:
                line += " " + kv
            if record.exc_info:
                line += "\n" + self.formatException(record.exc_info)
        return SECRETS.scrub(line)


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if not text or any(c.isspace() for c in text) or '"' in text:
        return json.dumps(text)
    return text


class Logger:
    """A thin wrapper giving `log.info(event, **fields)`."""

    def __init__(self, name: str) -> None:
        self._logger = logging.getLogger(f"{_ROOT}.{name}" if name else _ROOT)

    def _log(self, level: int, event: str, fields: dict[str, object], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level, event, extra={"fields": redact_fields(fields)}, exc_info=exc or None
            )

    def debug(self, event: str, **fields: object) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: object) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: object) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: object) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: object) -> None:
        self._log(logging.ERROR, event, fields, exc=True)


def get_logger(name: str) -> Logger:
    return Logger(name)


def configure_logging(
    fmt: LogFormat = "text", level: str = "info", stream: Any = None
) -> logging.Handler:
    """Route triolb's logs to stderr (or `stream`) in the chosen format; returns the handler."""
    root = logging.getLogger(_ROOT)
    for old in [h for h in root.handlers if isinstance(h.formatter, StructuredFormatter)]:
        root.removeHandler(old)  # a previous call's (other handlers, the journal, stay)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt))
    handler.setLevel(level.upper())  # the logger passes info on: the journal keeps some
    root.addHandler(handler)
    root.setLevel(min(logging.INFO, logging.getLevelName(level.upper())))
    root.propagate = False
    return handler


def attach_handler(handler: logging.Handler) -> None:
    """Give ``handler`` every triolb record it asks for (at least info), whatever the level
    of the lines written to stderr."""
    root = logging.getLogger(_ROOT)
    for old in [h for h in root.handlers if h is handler]:
        root.removeHandler(old)
    root.addHandler(handler)
    if root.getEffectiveLevel() > handler.level:
        root.setLevel(handler.level)


def register_secrets(values: Iterable[str | bytes]) -> None:
    for value in values:
        SECRETS.add(value)
