"""/api/v1/events: the node's recent notable events (`appliance.journal`), and
/api/v1/stream: server-sent events that tell a dashboard when to look again.

The stream sends ``event: journal`` with each new journal entry and ``event: state`` with
the state store's version whenever it changed (at most every `STREAM_INTERVAL_S`), so a page
refetches the JSON documents it shows instead of the stream duplicating every document.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import attrs
import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from appliance.journal import JOURNAL, JournalEntry
from appliance.state import StateStore

__all__ = ["STREAM_INTERVAL_S", "entry_json", "event_routes"]

#: how often a stream looks for news (the dashboard's refresh bound)
STREAM_INTERVAL_S = 0.25
#: a comment line this often keeps proxies from closing an idle stream
KEEPALIVE_S = 15.0
MAX_LIMIT = 500


def entry_json(entry: JournalEntry) -> dict[str, Any]:
    return attrs.asdict(entry)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw)  # ValueError: a 400
    if value < 0:
        raise ValueError(f"{name}: not negative")
    return value


def event_routes(store: StateStore) -> list[Route]:
    async def events(request: Request) -> JSONResponse:
        journal = store.get(JOURNAL)
        if journal is None:
            return JSONResponse({"error": "no event journal on this node"}, 503)
        try:
            since = _int_param(request, "since", 0)
            limit = min(_int_param(request, "limit", 100), MAX_LIMIT)
        except ValueError as exc:
            return JSONResponse({"error": f"bad parameter: {exc}"}, 400)
        found = journal.since(since, limit)
        return JSONResponse(
            {"last_seq": journal.last_seq, "events": [entry_json(e) for e in found]}
        )

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _stream(store, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return [Route("/api/v1/events", events), Route("/api/v1/stream", stream)]


async def _stream(store: StateStore, request: Request) -> AsyncIterator[str]:
    journal = store.get(JOURNAL)
    seq = 0 if journal is None else max(0, journal.last_seq - 50)  # some history first
    version = -1
    quiet = 0.0
    while not await request.is_disconnected():
        if journal is not None:
            for entry in journal.since(seq):
                seq = entry.seq
                yield _sse("journal", entry_json(entry), entry.seq)
        if store.version != version:
            version = store.version
            quiet = 0.0
            yield _sse("state", {"version": version})
        elif quiet >= KEEPALIVE_S:
            quiet = 0.0
            yield ": keepalive\n\n"
        await trio.sleep(STREAM_INTERVAL_S)
        quiet += STREAM_INTERVAL_S


def _sse(kind: str, data: dict[str, Any], ident: int | None = None) -> str:
    head = f"event: {kind}\n" + (f"id: {ident}\n" if ident is not None else "")
    return head + f"data: {json.dumps(data, default=str)}\n\n"
