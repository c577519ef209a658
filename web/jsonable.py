"""Turn state-store values (attrs classes, enums, addresses, paths) into JSON-ready data."""

from __future__ import annotations

import enum
import ipaddress
import json
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import attrs
from starlette.requests import Request

JsonValue = Any


def to_jsonable(value: object) -> JsonValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(
        value,
        ipaddress.IPv4Address
        | ipaddress.IPv6Address
        | ipaddress.IPv4Network
        | ipaddress.IPv6Network
        | PurePath,
    ):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if attrs.has(type(value)):
        names = [f.name for f in attrs.fields(type(value))]  # type: ignore[arg-type]
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, Mapping):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return str(value)


async def json_body(request: Request) -> dict[str, Any]:
    """A request's JSON object body ({} when empty); `ValueError` when it is not one."""
    raw = await request.body()
    if not raw:
        return {}
    body = json.loads(raw)
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body
