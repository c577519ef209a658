"""The configuration datastores over HTTP: the running configuration, its history, and the
operations of `appliance.committer` (validate, diff, commit, confirm, rollback) — the same code
SIGHUP and the CLI use. Reads (and validate/diff, which change nothing) are open; commit,
confirm and rollback need the bearer token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.committer import CONFIG_CONTROL, CommitResult, Committer
from appliance.config import ConfigError, dump_config
from appliance.state import StateStore

from .auth import TokenAuth
from .jsonable import json_body, to_jsonable

__all__ = ["config_routes"]


def _result(result: CommitResult) -> JSONResponse:
    """200 with the result when it succeeded, else 422 with its errors."""
    body = to_jsonable(result)
    if result.ok:
        return JSONResponse(body)
    return JSONResponse({"error": "; ".join(result.errors), **body}, 422)


def _candidate(body: dict[str, Any]) -> tuple[str, Path | None]:
    text = body.get("config")
    if not isinstance(text, str):
        raise ValueError("config: the candidate configuration as YAML text")
    base = body.get("base_dir")
    if base is not None and not (isinstance(base, str) and Path(base).is_absolute()):
        raise ValueError("base_dir: an absolute directory (where relative file paths start)")
    return text, None if base is None else Path(base)


def config_routes(store: StateStore, auth: TokenAuth) -> list[Route]:
    def committer() -> Committer | None:
        return store.get(CONFIG_CONTROL)

    async def running(request: Request) -> JSONResponse:
        control = committer()
        if control is None:
            return JSONResponse({"error": "no running configuration"}, 503)
        pending = control.pending
        return JSONResponse(
            {
                "generation": control.generation,
                "config": dump_config(control.running),
                "pending_confirm": None if pending is None else {"commit_id": pending.commit_id},
            }
        )

    async def history(request: Request) -> JSONResponse:
        control = committer()
        if control is None:
            return JSONResponse({"error": "no running configuration"}, 503)
        return JSONResponse({"commits": [r.summary() for r in control.history()]})

    async def check(request: Request) -> JSONResponse:
        """validate and diff: the candidate against the running configuration."""
        control = committer()
        if control is None:
            return JSONResponse({"error": "no running configuration"}, 503)
        try:
            text, base_dir = _candidate(await json_body(request))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        try:
            candidate = control.parse(text, "<candidate>", base_dir)
        except ConfigError as exc:
            errors = [str(e) for e in exc.errors]
            return JSONResponse({"valid": False, "errors": errors, "diff": None})
        return JSONResponse({"valid": True, "errors": [], "diff": control.diff(candidate)})

    async def change(request: Request) -> JSONResponse:
        refusal = auth.refusal(request)
        if refusal is not None:
            return refusal
        control = committer()
        if control is None:
            return JSONResponse({"error": "no running configuration"}, 503)
        verb = request.path_params["action"]
        if verb not in ("commit", "confirm", "rollback"):
            return JSONResponse({"error": f"no configuration operation {verb!r}"}, 404)
        try:
            body = await json_body(request)
            comment = body.get("comment")
            if comment is not None and not isinstance(comment, str):
                raise ValueError("comment: text")
            if verb == "commit":
                text, base_dir = _candidate(body)
                confirmed = body.get("confirmed")
                if confirmed is not None and not isinstance(confirmed, int | float):
                    raise ValueError("confirmed: seconds")
                result = await control.commit(
                    text,
                    origin=auth.origin(request),
                    comment=comment,
                    confirmed_s=None if confirmed is None else float(confirmed),
                    base_dir=base_dir,
                )
            elif verb == "confirm":
                result = await control.confirm(origin=auth.origin(request))
            else:
                back = body.get("back", 1)
                if not isinstance(back, int) or isinstance(back, bool):
                    raise ValueError("back: how many changes back (0 = the current one)")
                result = await control.rollback(back, origin=auth.origin(request), comment=comment)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return _result(result)

    return [
        Route("/api/v1/config", running),
        Route("/api/v1/config/history", history),
        Route("/api/v1/config/check", check, methods=["POST"]),
        Route("/api/v1/config/{action:str}", change, methods=["POST"]),
    ]
