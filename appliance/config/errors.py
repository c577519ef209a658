"""Configuration errors: every problem found in a file, each with its key path and line."""

from __future__ import annotations

from collections.abc import Iterable

import attrs


@attrs.frozen
class ConfigIssue:
    """One problem in a configuration file.

    ``path`` is the key path (``services[2].endpoints[0].port``; empty for the document itself),
    ``line`` the 1-based line of the offending node (for a missing key: of the parent mapping).
    """

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where = f"{where} (line {self.line})" if where else f"line {self.line}"
        return f"{where}: {self.message}" if where else self.message


class ConfigError(Exception):
    """A configuration was rejected; ``errors`` lists every issue found, in line order."""

    def __init__(self, errors: Iterable[ConfigIssue], source: str = "<string>") -> None:
        self.errors: list[ConfigIssue] = sorted(
            errors, key=lambda issue: (issue.line is None, issue.line or 0)
        )
        self.source = source
        super().__init__("\n".join(str(issue) for issue in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.errors)

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[ConfigIssue], str]]:
        return (ConfigError, (self.errors, self.source))
