"""Editing a node's YAML config file in place, one list element at a time (a BGP peer by its
address, an HA group by its id…), for tests that reload the daemon after each change."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["add", "edit", "element", "load", "remove", "save"]


def load(path: Path) -> dict[str, Any]:
    tree = yaml.safe_load(path.read_text())
    assert isinstance(tree, dict)
    return tree


def save(path: Path, tree: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))


def _list(tree: dict[str, Any], section: tuple[str, ...]) -> list[Any]:
    node: Any = tree
    for name in section:
        node = node[name]
    assert isinstance(node, list)
    return node


def element(tree: dict[str, Any], section: tuple[str, ...], key: str, value: object) -> Any:
    """The one element of the list at ``section`` whose ``key`` is ``value``."""
    (found,) = [e for e in _list(tree, section) if e[key] == value]
    assert isinstance(found, dict)
    return found


def edit(path: Path, section: tuple[str, ...], key: str, value: object, **changes: object) -> None:
    """Set ``changes`` in that element of the file."""
    tree = load(path)
    element(tree, section, key, value).update(changes)
    save(path, tree)


def remove(path: Path, section: tuple[str, ...], key: str, value: object) -> dict[str, Any]:
    """Take that element out of the file; returns it (to add it back)."""
    tree = load(path)
    found: dict[str, Any] = element(tree, section, key, value)
    _list(tree, section).remove(found)
    save(path, tree)
    return found


def add(path: Path, section: tuple[str, ...], new: dict[str, Any]) -> None:
    tree = load(path)
    _list(tree, section).append(new)
    save(path, tree)
