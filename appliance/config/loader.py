"""Entry points: configuration text or file to a validated ``Config``."""

from __future__ import annotations

from pathlib import Path

from .crosscheck import crosscheck
from .errors import ConfigError, ConfigIssue
from .model import Config
from .reader import Context
from .structure import structure
from .yaml_source import read_yaml


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None) -> Config:
    """Validate configuration ``text``; raise ``ConfigError`` listing every problem.

    Relative file paths are resolved against ``base_dir`` (default: the current directory).
    ``source`` names the text in the error (``ConfigError.source``).
    """
    try:
        root, yaml_issues = read_yaml(text)
    except ConfigError as exc:
        raise ConfigError(exc.errors, source) from None
    ctx = Context((base_dir if base_dir is not None else Path.cwd()).resolve())
    ctx.issues.extend(yaml_issues)
    draft = structure(root, ctx)
    if draft is not None:
        crosscheck(draft, ctx)
    if ctx.issues or draft is None:
        raise ConfigError(ctx.issues, source)
    return draft.to_config()


def load_config(path: Path) -> Config:
    """Read and validate the file at ``path``; its directory anchors relative file paths."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            [ConfigIssue("", None, f"cannot read {path}: {reason}")], str(path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigIssue("", None, f"{path} is not UTF-8 text: {exc.reason}")], str(path)
        ) from None
    return parse_config(text, str(path), path.resolve().parent)
