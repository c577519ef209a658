"""Bearer-token authorisation for API calls that change something.

Reads are open on the listen address; changes need `Authorization: Bearer <token>` with a
token of `web.token_file`: none → 401, wrong → 403. Without a token file, changes are refused.

The file holds one token per line, either bare (named "admin") or as ``NAME TOKEN`` (a name of
letters, digits, ``-``, ``_``, ``.``, ``@``), so several operators or tools each have their
own; a change is recorded (configuration history, logs) with the name of the token that made
it, never the token. Blank lines and lines starting with ``#`` are ignored.
"""

from __future__ import annotations

import hmac
import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from appliance.structlog import get_logger, register_secrets

__all__ = ["DEFAULT_NAME", "TokenAuth", "parse_tokens"]

log = get_logger("api")

DEFAULT_NAME = "admin"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def parse_tokens(text: str) -> dict[str, str]:
    """token → name from a token file's text; `ValueError` for a malformed line."""
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) == 1:
            name, token = DEFAULT_NAME, parts[0]
        elif len(parts) == 2 and _NAME.match(parts[0]):
            name, token = parts
        else:
            raise ValueError(f"line {number}: expected TOKEN or NAME TOKEN")
        if token in tokens:
            raise ValueError(f"line {number}: the same token twice")
        tokens[token] = name
    return tokens


class TokenAuth:
    def __init__(self, tokens: str | dict[str, str] | None) -> None:
        if isinstance(tokens, str):
            tokens = {tokens: DEFAULT_NAME}
        self._tokens = dict(tokens or {})
        register_secrets(self._tokens)

    @classmethod
    def from_file(cls, path: Path | None) -> TokenAuth:
        if path is None:
            return cls(None)
        return cls(parse_tokens(path.read_text()))

    def name(self, request: Request) -> str | None:
        """The name of the request's valid token, None without one."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        offered = given.strip().encode()
        found = None
        for token, name in self._tokens.items():  # compare with every one: constant time
            if hmac.compare_digest(offered, token.encode()):
                found = name
        return found

    def refusal(self, request: Request) -> JSONResponse | None:
        """None if the request may change state, else the response that refuses it."""
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return JSONResponse(
                {"error": "this call changes the node: send Authorization: Bearer <token>"},
                401,
                headers={"WWW-Authenticate": 'Bearer realm="triolb"'},
            )
        if not self._tokens:
            return JSONResponse({"error": "changes are disabled: no web.token_file set"}, 403)
        if self.name(request) is None:
            return JSONResponse({"error": "wrong token"}, 403)
        return None

    def origin(self, request: Request) -> str:
        """How a change made by this (authorised) request is recorded: ``api:NAME``."""
        return f"api:{self.name(request) or 'unknown'}"

    def record(self, request: Request, action: str, target: str) -> None:
        """Log an operator action (``api_action``, kept in the event journal) with the name
        of the token that made it."""
        log.info("api_action", by=self.name(request) or "unknown", action=action, target=target)
