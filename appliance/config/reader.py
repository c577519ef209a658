"""Reading a YAML node tree into values while collecting every error.

A ``Field`` is a node at a key path. A converter is ``Callable[[Field], T]``: it returns the
value or raises ``Invalid(message)`` (recorded against the field) or ``Dropped`` (its problems
are recorded already). ``MapReader`` reads the keys of one mapping; each read returns a
``Got[T]`` whose value is taken with ``.get()`` once ``finish()`` has confirmed that nothing in
the mapping failed.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

import attrs

from .errors import ConfigIssue
from .yaml_source import NULL_TAG, YMap, YNode, YScalar, YSeq

T = TypeVar("T")
D = TypeVar("D")  # type of a default, kept apart from T so mypy infers each from its own argument
Converter = Callable[["Field"], T]


class Invalid(Exception):
    """A converter rejects its field; the message becomes a ``ConfigIssue``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Dropped(Exception):
    """A converter gave up after recording its issues itself."""


class Context:
    """State of one parse: issues found so far, the line of every path seen, the base directory."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.issues: list[ConfigIssue] = []
        self.lines: dict[str, int] = {}

    def report(self, path: str, line: int | None, message: str) -> None:
        self.issues.append(ConfigIssue(path, line, message))

    def line_of(self, path: str) -> int | None:
        """The line of ``path``, else of its nearest ancestor that was seen."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = _parent(path)

    def report_at(self, path: str, message: str) -> None:
        """Report against a path seen earlier (cross-checks run on classes, not nodes)."""
        self.report(path, self.line_of(path), message)


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rpartition(".")[0]


@attrs.frozen
class Field:
    node: YNode
    path: str
    ctx: Context
    key_line: int | None = None  # line of the key holding this node (a block value starts below)

    def __attrs_post_init__(self) -> None:
        self.ctx.lines[self.path] = self.node.line

    @property
    def line(self) -> int:
        return self.node.line

    def child(self, node: YNode, key: str, key_line: int | None = None) -> Field:
        return Field(node, f"{self.path}.{key}" if self.path else key, self.ctx, key_line)

    def item(self, node: YNode, index: int) -> Field:
        return Field(node, f"{self.path}[{index}]", self.ctx)

    def mapping(self, keys: Iterable[str]) -> MapReader:
        if not isinstance(self.node, YMap):
            raise Invalid(f"must be a mapping, not {self.node.type_name}")
        return MapReader(self, self.node, tuple(keys))

    def sequence(self) -> tuple[Field, ...]:
        if not isinstance(self.node, YSeq):
            raise Invalid(f"must be a list, not {self.node.type_name}")
        return tuple(self.item(node, i) for i, node in enumerate(self.node.items))

    def scalar(self, expected_tag: str, wanted: str) -> YScalar:
        """The node as a scalar with ``expected_tag``, else ``Invalid('must be <wanted> ...')``."""
        node = self.node
        if not isinstance(node, YScalar) or node.tag != expected_tag:
            raise Invalid(f"must be {wanted}, not {node.type_name}")
        return node


class Missing(enum.Enum):
    MISSING = enum.auto()


MISSING = Missing.MISSING


@attrs.frozen
class Got(Generic[T]):
    """The result of reading one key: a value, or MISSING when reading it failed."""

    value: T | Missing

    @property
    def ok(self) -> bool:
        return self.value is not MISSING

    def get(self) -> T:
        if isinstance(self.value, Missing):
            raise AssertionError("value read with errors; call MapReader.finish() first")
        return self.value


def convert(conv: Converter[T], field: Field) -> Got[T]:
    """Run ``conv`` on ``field``, recording what it rejects."""
    try:
        return Got(conv(field))
    except Invalid as exc:
        field.ctx.report(field.path, field.line, exc.message)
    except Dropped:
        pass
    return Got(MISSING)


class MapReader:
    """Reads the keys of one mapping; ``finish()`` rejects keys not in ``keys``."""

    def __init__(self, field: Field, node: YMap, keys: tuple[str, ...]) -> None:
        self.field = field
        self._node = node
        self._keys = keys
        self._issues_before = len(field.ctx.issues)

    def present(self, key: str) -> Field | None:
        """The field for ``key``, or None when it is absent or null."""
        assert key in self._keys, f"{key!r} not declared for {self.field.path or 'top level'}"
        entry = self._node.entries.get(key)
        if entry is None:
            return None
        node = entry[1]
        if isinstance(node, YScalar) and node.tag == NULL_TAG:
            self.field.ctx.lines[self._path(key)] = node.line
            return None
        return self.field.child(node, key, entry[0])

    def required(self, key: str, conv: Converter[T]) -> Got[T]:
        field = self.present(key)
        if field is None:
            self.error(key, "required key missing")
            return Got(MISSING)
        return convert(conv, field)

    def optional(self, key: str, conv: Converter[T], default: D) -> Got[T | D]:
        field = self.present(key)
        if field is None:
            return Got(default)
        result: Got[T | D] = convert(conv, field)
        return result

    def only_if(
        self, condition: bool, key: str, conv: Converter[T], default: T, why: str
    ) -> Got[T]:
        """Read ``key`` where it applies; where it does not, reject it (``why`` says where)."""
        if condition:
            return self.optional(key, conv, default)
        field = self.present(key)
        if field is not None:
            self.field.ctx.report(field.path, field.line, f"only valid {why}")
        return Got(default)

    def error(self, key: str, message: str) -> None:
        """Report against ``key``: its line if present, else the line where the mapping is."""
        entry = self._node.entries.get(key)
        if entry is not None:
            line = entry[1].line
        else:
            line = self.field.key_line if self.field.key_line is not None else self.field.line
        self.field.ctx.report(self._path(key), line, message)

    def finish(self) -> None:
        """Reject unknown keys; raise ``Dropped`` if anything in this mapping failed."""
        for key, (line, _) in self._node.entries.items():
            if key not in self._keys:
                expected = ", ".join(self._keys)
                self.field.ctx.report(
                    self._path(key), line, f"unknown key; expected one of {expected}"
                )
        if len(self.field.ctx.issues) > self._issues_before:
            raise Dropped

    def _path(self, key: str) -> str:
        return f"{self.field.path}.{key}" if self.field.path else key
