"""Check HTTP exchanges with a node against its OpenAPI document (`web.openapi`), and the small
client that makes those exchanges inside a lab node's namespace.

`ApiDocument.problems` says what is wrong with one exchange: a path or query parameter the
document does not know, a status it does not list for the operation, another media type, or a
JSON body that does not validate against the response's schema (Draft 2020-12, the document
registered as one resource so every ``#/components/...`` reference resolves). The server-sent
events of ``/api/v1/stream`` are checked against the schemas of its ``x-sse-events``.

The client runs as ``python -m tests.lab.support.api_schema`` in a node's namespace (the lab puts
this checkout on PYTHONPATH): a JSON list of requests on stdin, a JSON list of exchanges on
stdout. A stream is read for a bounded time and number of events, then closed.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from referencing import Registry
from referencing.jsonschema import DRAFT202012

__all__ = ["ApiDocument", "Exchange", "call", "sse_events"]

DOC_URI = "urn:triolb:openapi"
BASE_URL = "http://127.0.0.1:8080"
#: a stream is read at most this long and this many events
STREAM_S = 3.0
STREAM_EVENTS = 20
TIMEOUT_S = 30.0


@attrs.frozen
class Exchange:
    """One request and its answer."""

    method: str
    path: str
    status: int
    content_type: str
    body: str
    params: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Exchange:
        return cls(**data)

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method} {self.path}{'?' + query if query else ''} -> {self.status}"


def pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) to ``parts``."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event kind, decoded data) of every complete event of a server-sent event stream."""
    found = []
    for block in text.split("\n\n")[:-1]:  # the last one may be cut off
        fields = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        if "event" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


class ApiDocument:
    """An OpenAPI 3.1 document, for checking exchanges against it."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc
        self.registry: Registry[Any] = Registry().with_resource(
            DOC_URI, DRAFT202012.create_resource(doc)
        )
        # literal segments before templated ones, as a router would prefer them
        self._templates: list[str] = sorted(
            doc["paths"], key=lambda t: [s.startswith("{") for s in t.split("/")]
        )

    def template(self, path: str) -> str | None:
        """The documented path template ``path`` is an instance of."""
        for template in self._templates:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            if re.fullmatch(pattern, path):
                return template
        return None

    def validator(self, at: str) -> Draft202012Validator:
        """A validator of the schema at JSON pointer ``at`` of the document."""
        return Draft202012Validator({"$ref": f"{DOC_URI}#{at}"}, registry=self.registry)

    def schema_problems(self, at: str, instance: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
            for e in self.validator(at).iter_errors(instance)
        ]

    def problems(self, exchange: Exchange) -> list[str]:
        """What does not match the document in ``exchange`` ([] when all does)."""
        template = self.template(exchange.path)
        if template is None:
            return [f"{exchange}: undocumented path"]
        method = exchange.method.lower()
        operation = self.doc["paths"][template].get(method)
        if operation is None:
            return [f"{exchange}: undocumented method"]
        known = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
        found = [
            f"{exchange}: undocumented parameter {n}" for n in exchange.params if n not in known
        ]
        response = operation["responses"].get(str(exchange.status))
        if response is None:
            return [*found, f"{exchange}: undocumented status"]
        media = exchange.content_type.split(";")[0].strip()
        content = {k.split(";")[0].strip(): k for k in response.get("content", {})}
        if media not in content:
            return [*found, f"{exchange}: media type {exchange.content_type!r} not in {content}"]
        at = pointer("paths", template, method, "responses", str(exchange.status))
        if media == "application/json":
            schema_at = at + pointer("content", content[media], "schema")
            found += [f"{exchange}: {p}" for p in self.schema_problems(schema_at, exchange.json())]
        elif media == "text/event-stream":
            kinds = response["x-sse-events"]
            for kind, data in sse_events(exchange.body):
                if kind not in kinds:
                    found.append(f"{exchange}: undocumented event {kind}")
                    continue
                event_at = at + pointer("x-sse-events", kind)
                found += [f"{exchange} {kind}: {p}" for p in self.schema_problems(event_at, data)]
        return found

    def operations(self) -> Iterator[tuple[str, str]]:
        """Every documented (path template, method)."""
        for template, item in self.doc["paths"].items():
            for method in item:
                yield template, method


# --- the client (runs inside a node's namespace) -----------------------------------------------


def _stream(client: Any, request: Mapping[str, Any]) -> dict[str, Any]:
    """Read a server-sent event stream for at most `STREAM_S` or `STREAM_EVENTS` events."""
    deadline = time.monotonic() + STREAM_S
    text = ""
    with client.stream("GET", request["path"], params=request.get("params")) as response:
        for chunk in response.iter_text():
            text += chunk
            if time.monotonic() > deadline or text.count("\n\n") >= STREAM_EVENTS:
                break
        return {"status": response.status_code, "content_type": response.headers["content-type"],
                "body": text}  # fmt: skip


def call(requests: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Make each request against `BASE_URL` in turn; the exchanges (see module doc).

    A request: ``method``, ``path``, optional ``params``, ``json`` (a body), ``token`` (sent
    as ``Authorization: Bearer``) and ``stream`` (read as server-sent events)."""
    import httpx  # only inside the namespace's process

    exchanges = []
    with httpx.Client(base_url=BASE_URL, timeout=TIMEOUT_S) as client:
        for request in requests:
            params = dict(request.get("params") or {})
            if request.get("stream"):
                answer = _stream(client, request)
            else:
                headers = {}
                if request.get("token") is not None:
                    headers["Authorization"] = f"Bearer {request['token']}"
                response = client.request(
                    request["method"],
                    request["path"],
                    params=params,
                    json=request.get("json"),
                    headers=headers,
                )
                answer = {
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type", ""),
                    "body": response.text,
                }
            exchanges.append(
                {"method": request["method"], "path": request["path"], "params": params, **answer}
            )
    return exchanges


def main() -> int:
    json.dump(call(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
