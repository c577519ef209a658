"""Converters for scalar values and lists (see ``reader`` for the converter protocol).

Integers and booleans must be YAML integers and booleans (``"80"`` and ``true`` are not ports).
Text values accept any non-null, non-boolean scalar by its source text, so ``65100:10`` (which
YAML 1.1 would read as a base-60 integer) stays the community it looks like.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

from .reader import Converter, Dropped, Field, Invalid, convert
from .values import (
    Community,
    IPAddress,
    IPNetwork,
    LargeCommunity,
    SocketAddress,
    parse_ip,
    parse_ipv4,
    parse_network,
)
from .yaml_source import BOOL_TAG, INT_TAG, NULL_TAG, YScalar

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NODE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,30}")
IFNAME_MAX = 15  # IFNAMSIZ - 1

_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def integer(low: int, high: int | None = None, *, multiple_of: int = 1) -> Converter[int]:
    """An integer within ``low``..``high`` (no upper bound when ``high`` is None)."""

    def conv(field: Field) -> int:
        node = field.scalar(INT_TAG, "an integer")
        try:
            value = _CONSTRUCTOR.construct_yaml_int(yaml.ScalarNode(node.tag, node.text))
        except ValueError:
            raise Invalid(f"not a valid integer: {node.text!r}") from None
        if value < low or (high is not None and value > high):
            raise Invalid(range_text(low, high))
        if value % multiple_of:
            raise Invalid(f"must be a multiple of {multiple_of}")
        return value

    return conv


def range_text(low: int, high: int | None) -> str:
    if high is None:
        return f"must be >= {low}"
    if low < 0:
        return f"must be between {low} and {high}"
    return f"must be {low}-{high}"


def boolean(field: Field) -> bool:
    node = field.scalar(BOOL_TAG, "a boolean (true or false)")
    return bool(_CONSTRUCTOR.construct_yaml_bool(yaml.ScalarNode(node.tag, node.text)))


def text(field: Field) -> str:
    """Any non-empty string; numbers and dates are taken as written."""
    node = field.node
    if not isinstance(node, YScalar) or node.tag in (NULL_TAG, BOOL_TAG):
        hint = " (quote it)" if isinstance(node, YScalar) else ""
        raise Invalid(f"must be a string, not {node.type_name}{hint}")
    if not node.text:
        raise Invalid("must not be empty")
    return node.text


def matching(pattern: re.Pattern[str], description: str) -> Converter[str]:
    def conv(field: Field) -> str:
        value = text(field)
        if not pattern.fullmatch(value):
            raise Invalid(f"{value!r} is not a valid name: {description}")
        return value

    return conv


name = matching(NAME_RE, "letters, digits, '_', '.', '-'; at most 63 characters")
node_name = matching(NODE_NAME_RE, "lower-case letters, digits and '-'; at most 31 characters")


def ifname(field: Field) -> str:
    value = text(field)
    if len(value) > IFNAME_MAX or value in (".", "..") or any(c in value for c in "/: \t\n"):
        raise Invalid(f"{value!r} is not a valid interface name")
    return value


def regex(field: Field) -> str:
    value = text(field)
    try:
        re.compile(value)
    except re.error as exc:
        raise Invalid(f"invalid regular expression {value!r}: {exc}") from None
    except (RecursionError, OverflowError):
        raise Invalid(f"regular expression too complex: {value!r}") from None
    return value


def _parsed(parse: Callable[[str], T]) -> Converter[T]:
    def conv(field: Field) -> T:
        try:
            return parse(text(field))
        except ValueError as exc:
            raise Invalid(str(exc)) from None

    return conv


ip_address: Converter[IPAddress] = _parsed(parse_ip)
ipv4_address = _parsed(parse_ipv4)
network: Converter[IPNetwork] = _parsed(parse_network)


def socket_address(default_port: int | None) -> Converter[SocketAddress]:
    return _parsed(lambda value: SocketAddress.parse(value, default_port))


def choice(enum_type: type[E]) -> Converter[E]:
    def conv(field: Field) -> E:
        value = text(field)
        for member in enum_type:
            if member.value == value:
                return member
        expected = ", ".join(str(member.value) for member in enum_type)
        raise Invalid(f"{value!r} is not one of {expected}")

    return conv


def existing_file(field: Field) -> Path:
    """A path, resolved against the config file's directory, of a file that exists.

    Only existence is checked: the content (often a secret) is never read here.
    """
    value = text(field)
    try:
        path = (field.ctx.base_dir / value).resolve()
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # e.g. a NUL byte, a name too long
        raise Invalid(f"unusable file name {value!r}: {exc}") from None
    if not exists:
        raise Invalid(f"file not found: {path}")
    if not is_file:
        raise Invalid(f"not a regular file: {path}")
    return path


def list_of(item: Converter[T], min_items: int = 0) -> Converter[tuple[T, ...]]:
    """A list whose every item ``item`` accepts; all bad items are reported."""

    def conv(field: Field) -> tuple[T, ...]:
        fields = field.sequence()
        if len(fields) < min_items:
            raise Invalid(f"must have at least {min_items} item{'s' if min_items > 1 else ''}")
        results = [convert(item, f) for f in fields]
        if not all(r.ok for r in results):
            raise Dropped
        return tuple(r.get() for r in results)

    return conv


def items_of(item: Converter[T]) -> Converter[tuple[T | None, ...]]:
    """Like ``list_of`` but keeps going: a bad item becomes None (so cross-checks keep indexes)."""

    def conv(field: Field) -> tuple[T | None, ...]:
        results = [convert(item, f) for f in field.sequence()]
        return tuple(r.get() if r.ok else None for r in results)

    return conv


def community(field: Field) -> Community:
    try:
        return Community.parse(text(field))
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def large_community(field: Field) -> LargeCommunity:
    try:
        return LargeCommunity.parse(text(field))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
