from __future__ import annotations

import io
import json

from appliance.structlog import configure_logging, get_logger, register_secrets


def test_text_format_has_event_and_fields() -> None:
    out = io.StringIO()
    configure_logging("text", "debug", out)
    get_logger("bgp").info("session_up", peer="192.168.80.254", asn=65101, note="two words")
    line = out.getvalue().strip()
    assert " INFO    bgp        session_up peer=192.168.80.254 asn=65101 " in line
    assert 'note="two words"' in line


def test_json_format_and_secret_keys_redacted() -> None:
    out = io.StringIO()
    configure_logging("json", "info", out)
    get_logger("sync").info("peer_added", peer="192.168.80.253", password="hunter22", key_file="x")
    doc = json.loads(out.getvalue())
    assert doc["event"] == "peer_added"
    assert doc["component"] == "sync"
    assert doc["password"] == "***"
    assert doc["key_file"] == "x"  # a file path is not a secret


def test_registered_secret_values_never_printed() -> None:
    out = io.StringIO()
    configure_logging("text", "info", out)
    register_secrets([b"s3cr3t-token-value\n"])
    get_logger("web").warning("bad_request", header="Bearer s3cr3t-token-value")
    assert "s3cr3t-token-value" not in out.getvalue()
    assert "Bearer ***" in out.getvalue()


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("text", "warning", out)
    get_logger("x").info("hidden")
    assert out.getvalue() == ""
