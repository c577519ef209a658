"""Bearer tokens of web.token_file: several named tokens, 401/403, names not tokens recorded."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from web.auth import TokenAuth, parse_tokens


def _request(header: str | None) -> Request:
    headers = [] if header is None else [(b"authorization", header.encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers})


def test_token_file_lines() -> None:
    text = "# operators\n\nbare-token-1\nalice  tok-alice\nci.bot@example tok-ci\n"
    assert parse_tokens(text) == {
        "bare-token-1": "admin",
        "tok-alice": "alice",
        "tok-ci": "ci.bot@example",
    }
    for bad in ("a b c\n", "bad/name tok\n", "x tok\ny tok\n"):
        with pytest.raises(ValueError, match="line"):
            parse_tokens(bad)


def test_refusals_and_names() -> None:
    auth = TokenAuth({"tok-alice": "alice", "tok-bob": "bob"})
    missing, wrong = auth.refusal(_request(None)), auth.refusal(_request("Bearer nope"))
    assert missing is not None and missing.status_code == 401
    assert wrong is not None and wrong.status_code == 403
    assert auth.refusal(_request("Basic tok-bob")) is not None
    assert auth.refusal(_request("Bearer tok-bob")) is None
    assert auth.name(_request("Bearer tok-bob")) == "bob"
    assert auth.origin(_request("bearer tok-alice")) == "api:alice"
    disabled = TokenAuth(None).refusal(_request("Bearer tok-bob"))
    assert disabled is not None and disabled.status_code == 403
