"""The event journal (notable log events, secrets scrubbed) and its API: /api/v1/events and
the /api/v1/stream server-sent events a dashboard follows."""

from __future__ import annotations

import json

import httpx
import trio
import trio.testing

from appliance.journal import JOURNAL, close_journal, open_journal
from appliance.state import StateKey, StateStore
from appliance.structlog import get_logger, register_secrets
from web.app import create_app
from web.routes_events import _stream

log = get_logger("ha")


def test_the_journal_keeps_notable_events_without_secrets() -> None:
    journal = open_journal()
    try:
        register_secrets(["hunter2-the-key"])
        log.info("ha_state", group=1, old="backup", new="master", reason="hunter2-the-key")
        log.info("ha_vips_added", group=1)  # not notable
        log.info("commit_applied", commit_id=3, token="abc")  # a secret-named key
        entries = journal.since()
        assert [e.event for e in entries] == ["ha_state", "commit_applied"]
        assert entries[0].fields == {"group": 1, "old": "backup", "new": "master", "reason": "***"}
        assert entries[0].component == "ha" and entries[0].level == "info"
        assert entries[1].fields["token"] == "***"
        assert [e.seq for e in journal.since(1)] == [2] and journal.last_seq == 2
        assert journal.since(0, limit=1)[0].seq == 2  # the newest of them
    finally:
        close_journal(journal)
    log.info("ha_state", group=1)  # detached: no longer kept
    assert journal.last_seq == 2


async def test_events_api_pages_and_refuses_bad_parameters() -> None:
    store = StateStore()
    journal = open_journal()
    store.publish(JOURNAL, journal)
    try:
        for group in range(5):
            log.info("ha_state", group=group, new="master")
        transport = httpx.ASGITransport(app=create_app(store))
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
            body = (await http.get("/api/v1/events", params={"since": 2, "limit": 2})).json()
            assert body["last_seq"] == 5
            assert [e["seq"] for e in body["events"]] == [4, 5]
            assert set(body["events"][0]) == {
                "seq",
                "time",
                "level",
                "component",
                "event",
                "fields",
            }
            for bad in ({"since": "x"}, {"limit": "-1"}):
                assert (await http.get("/api/v1/events", params=bad)).status_code == 400
    finally:
        close_journal(journal)


class _Client:
    """A request that disconnects after ``rounds`` polls."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    async def is_disconnected(self) -> bool:
        self.rounds -= 1
        return self.rounds < 0


async def test_the_stream_sends_journal_entries_and_state_changes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = StateStore()
    journal = open_journal()
    store.publish(JOURNAL, journal)
    try:
        log.info("ha_state", group=1, new="backup")
        chunks: list[str] = []

        async def follow() -> None:
            async for chunk in _stream(store, _Client(8)):  # type: ignore[arg-type]
                chunks.append(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            await trio.sleep(0.6)
            log.info("ha_state", group=1, new="master")
            store.publish(StateKey[int]("ha/1/role"), 2)
        kinds = [c.split("\n")[0] for c in chunks]
        assert kinds.count("event: journal") == 2 and kinds.count("event: state") == 2
        journal_data = [json.loads(c.split("data: ")[1]) for c in chunks if "journal" in c]
        assert [d["fields"]["new"] for d in journal_data] == ["backup", "master"]
        assert all(c.endswith("\n\n") for c in chunks)
    finally:
        close_journal(journal)
