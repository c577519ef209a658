"""YAML text to a small node tree that keeps the line of every node.

Uses PyYAML's composer (SafeLoader: no arbitrary tags) and converts its node graph into
``YScalar`` / ``YSeq`` / ``YMap``. Mapping keys must be unique strings; merge keys (``<<``) are
expanded, with explicit keys taking precedence. Lines are 1-based.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs
import yaml

from .errors import ConfigError, ConfigIssue

TAG = "tag:yaml.org,2002:"
NULL_TAG = TAG + "null"
BOOL_TAG = TAG + "bool"
INT_TAG = TAG + "int"
FLOAT_TAG = TAG + "float"
STR_TAG = TAG + "str"
MERGE_TAG = TAG + "merge"
_SCALAR_TAGS = {NULL_TAG, BOOL_TAG, INT_TAG, FLOAT_TAG, STR_TAG, TAG + "timestamp"}
_SEQ_TAG = TAG + "seq"
# libyaml's parser when PyYAML was built with it (same safe tag set, same marks, much faster)
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MAP_TAG = TAG + "map"

_TYPE_NAMES = {
    NULL_TAG: "null",
    BOOL_TAG: "a boolean",
    INT_TAG: "an integer",
    FLOAT_TAG: "a number",
    STR_TAG: "a string",
    TAG + "timestamp": "a date",
}


@attrs.frozen
class YScalar:
    tag: str
    text: str
    line: int

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.tag, "a scalar")


@attrs.frozen
class YSeq:
    items: tuple[YNode, ...]
    line: int
    type_name = "a list"


@attrs.frozen
class YMap:
    """``entries`` maps each key to (line of the key, value node), in document order."""

    entries: dict[str, tuple[int, YNode]]
    line: int
    type_name = "a mapping"


YNode: TypeAlias = YScalar | YSeq | YMap


def read_yaml(text: str) -> tuple[YNode, list[ConfigIssue]]:
    """Compose ``text`` into a node tree and the issues found on the way (duplicate keys, ...).

    Raises ``ConfigError`` when there is no tree at all: invalid YAML or an empty document.
    """
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # an error found at the end of the text is put on its last line
        line = min(mark.line + 1, len(text.splitlines()) or 1) if mark is not None else None
        message = ": ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError([ConfigIssue("", line, f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as exc:  # e.g. ReaderError: a character YAML does not allow
        raise ConfigError([ConfigIssue("", None, f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise ConfigError([ConfigIssue("", None, "invalid YAML: nested too deeply")]) from None
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == NULL_TAG):
        raise ConfigError([ConfigIssue("", None, "the configuration is empty")])
    converter = _Converter()
    try:
        tree = converter.convert(root, "")
    except RecursionError:
        raise ConfigError([ConfigIssue("", None, "invalid YAML: nested too deeply")]) from None
    return tree, converter.issues


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Converter:
    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []
        self._active: set[int] = set()  # nodes on the current path: catches recursive aliases

    def convert(self, node: yaml.Node, path: str) -> YNode:
        line = node.start_mark.line + 1
        if id(node) in self._active:
            raise ConfigError([ConfigIssue(path, line, "recursive alias")])
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.ScalarNode):
                if node.tag not in _SCALAR_TAGS:
                    self.issues.append(ConfigIssue(path, line, f"unsupported tag {node.tag}"))
                return YScalar(str(node.tag), str(node.value), line)
            if isinstance(node, yaml.SequenceNode):
                self._check_tag(node, _SEQ_TAG, path)
                items = tuple(self.convert(n, f"{path}[{i}]") for i, n in enumerate(node.value))
                return YSeq(items, line)
            assert isinstance(node, yaml.MappingNode)
            self._check_tag(node, _MAP_TAG, path)
            return YMap(self._entries(node, path), line)
        finally:
            self._active.discard(id(node))

    def _check_tag(self, node: yaml.Node, expected: str, path: str) -> None:
        if node.tag != expected:
            line = node.start_mark.line + 1
            self.issues.append(ConfigIssue(path, line, f"unsupported tag {node.tag}"))

    def _entries(self, node: yaml.MappingNode, path: str) -> dict[str, tuple[int, YNode]]:
        entries: dict[str, tuple[int, YNode]] = {}
        merged: dict[str, tuple[int, YNode]] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == MERGE_TAG:
                for key, entry in self._merge_sources(value_node, path).items():
                    merged.setdefault(key, entry)
                continue
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag in (
                _SEQ_TAG,
                _MAP_TAG,
            ):
                self.issues.append(ConfigIssue(path, key_line, "mapping keys must be strings"))
                continue
            key = str(key_node.value)
            if key in entries:
                first = entries[key][0]
                self.issues.append(
                    ConfigIssue(
                        _child(path, key), key_line, f"duplicate key (first at line {first})"
                    )
                )
                continue
            entries[key] = (key_line, self.convert(value_node, _child(path, key)))
        for key, entry in merged.items():
            entries.setdefault(key, entry)
        return entries

    def _merge_sources(self, node: yaml.Node, path: str) -> dict[str, tuple[int, YNode]]:
        """The entries a ``<<`` merge brings in; with a list, earlier mappings win."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        result: dict[str, tuple[int, YNode]] = {}
        for source in sources:
            converted = self.convert(source, path)
            if not isinstance(converted, YMap):
                line = source.start_mark.line + 1
                self.issues.append(ConfigIssue(path, line, "'<<' must merge a mapping"))
                continue
            for key, entry in converted.entries.items():
                result.setdefault(key, entry)
        return result
