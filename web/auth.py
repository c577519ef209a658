"""Bearer-token authorisation for API calls that change something.

Reads are open on the listen address; changes need `Authorization: Bearer <token>` with the
token of `web.token_file`: none → 401, wrong → 403. Without a token file, changes are refused.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse

from appliance.structlog import register_secrets


class TokenAuth:
    def __init__(self, token: str | None) -> None:
        self._token = token
        if token:
            register_secrets([token])

    @classmethod
    def from_file(cls, path: Path | None) -> TokenAuth:
        if path is None:
            return cls(None)
        token = path.read_text().strip()
        return cls(token or None)

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
        if self._token is None:
            return JSONResponse({"error": "changes are disabled: no web.token_file set"}, 403)
        if not hmac.compare_digest(given.strip().encode(), self._token.encode()):
            return JSONResponse({"error": "wrong token"}, 403)
        return None
