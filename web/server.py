"""The web service: hypercorn's Trio worker serving the ASGI app, started with nursery.start."""

from __future__ import annotations

import logging

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from appliance.config.values import SocketAddress
from appliance.state import StateKey, StateStore
from appliance.structlog import get_logger

from .app import create_app
from .auth import TokenAuth

log = get_logger("web")

WEB_BOUND = StateKey[tuple[str, ...]]("web/bound")


class WebService:
    def __init__(self, store: StateStore, listen: SocketAddress, auth: TokenAuth) -> None:
        self._store = store
        self._listen = listen
        self._auth = auth

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = HypercornConfig()
        config.bind = [str(self._listen)]
        config.accesslog = None
        config.errorlog = logging.getLogger("triolb.web.hypercorn")
        config.graceful_timeout = 1.0
        app = create_app(self._store, self._auth)
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(_serve, app, config)
            self._store.publish(WEB_BOUND, tuple(urls))
            log.info("web_listening", urls=list(urls))
            task_status.started()


async def _serve(
    app: object, config: HypercornConfig, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    await serve(app, config, task_status=task_status)  # type: ignore[arg-type]
