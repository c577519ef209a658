"""`triolb run` with BGP against the lab's BIRD, read back with `triolb show bgp …`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.lab.api import LabHandle
from tests.lab.support.polling import wait_for

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).parents[2] / "examples"
TRIOLB = [sys.executable, "-m", "appliance"]


def _show(handle: LabHandle, *args: str) -> Any:
    result = handle.exec("node1", [*TRIOLB, "show", "--json", *args], timeout=20)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _config_with_token(tmp_path: Path) -> Path:
    """Scenario 3's node1 with a web token (the example has none)."""
    token = tmp_path / "web.token"
    token.write_text("lab-token-0123456789abcdef\n")
    text = (EXAMPLES / "scenario3-bgp-ecmp-node1.yaml").read_text()
    assert "\nweb:\n  listen: 127.0.0.1:8080\n" in text
    text = text.replace(
        "\nweb:\n  listen: 127.0.0.1:8080\n",
        f"\nweb:\n  listen: 127.0.0.1:8080\n  token_file: {token}\n",
    )
    path = tmp_path / "node1.yaml"
    path.write_text(text)
    return path


def _post(handle: LabHandle, path: str, token: str | None, body: str = "{}") -> tuple[int, str]:
    code = (
        "import httpx,sys;"
        "h={'Authorization': 'Bearer '+sys.argv[2]} if sys.argv[2] else {};"
        "r=httpx.post('http://127.0.0.1:8080'+sys.argv[1],content=sys.argv[3],headers=h);"
        "print(r.status_code);print(r.text)"
    )
    result = handle.exec("node1", [sys.executable, "-c", code, path, token or "", body], timeout=20)
    status, _, text = result.stdout.partition("\n")
    return int(status), text


def test_show_bgp_against_a_running_daemon(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    # endpoints up: the services are probed, and a service without a healthy endpoint would be
    # withdrawn from BGP (route health injection)
    handle = lab_factory("scenario3", start_endpoints=True)
    config = _config_with_token(tmp_path)
    handle.spawn("node1", "daemon", [*TRIOLB, "run", "--config", str(config)])
    handle.wait_for_log("daemon", "daemon_ready")

    def established() -> bool:
        neighbors = _show(handle, "bgp", "neighbors")["neighbors"]
        return bool(neighbors) and neighbors[0]["state"] == "Established"

    wait_for(established, "the session to the router")
    neighbor = _show(handle, "bgp", "neighbors")["neighbors"][0]
    assert neighbor["address"] == "192.168.80.254"
    assert neighbor["asn"] == 65101
    assert neighbor["prefixes_advertised"] == 1

    advertised = _show(handle, "bgp", "routes", "--advertised")["routes"]
    assert [(r["prefix"], r["med"], r["as_path"]) for r in advertised] == [
        ("198.51.100.10/32", 10, "65100")
    ]
    assert "198.51.100.10/32" in handle.birdc("show route 198.51.100.10/32")

    table = handle.exec("node1", [*TRIOLB, "show", "bgp", "neighbors"], timeout=20)
    assert "192.168.80.254" in table.stdout and "Established" in table.stdout

    bad = handle.exec("node1", [*TRIOLB, "show", "bgp", "routes", "--peer", "nonsense"], timeout=20)
    assert bad.returncode == 1
    assert "peer" in bad.stderr or "address" in bad.stderr

    # operator actions: token required (401 without, 403 wrong), validated, then applied
    path = "/api/v1/bgp/neighbors/192.168.80.254/shutdown"
    assert _post(handle, path, None)[0] == 401
    assert _post(handle, path, "not-the-token")[0] == 403
    token = "lab-token-0123456789abcdef"
    assert _post(handle, "/api/v1/bgp/neighbors/nonsense/shutdown", token)[0] == 400
    assert _post(handle, "/api/v1/bgp/neighbors/192.168.80.99/shutdown", token)[0] == 404
    assert _post(handle, path, token, '{"communication": 7}')[0] == 400
    assert _post(handle, path, token, "[1, 2]")[0] == 400
    assert _show(handle, "bgp", "neighbors")["neighbors"][0]["state"] == "Established"

    token_file = tmp_path / "web.token"
    cli = [*TRIOLB, "bgp", "--token-file", str(token_file)]
    down = handle.exec(
        "node1", [*cli, "shutdown", "192.168.80.254", "--message", "maintenance 42"], timeout=20
    )
    assert down.returncode == 0, down.stderr
    wait_for(
        lambda: "maintenance 42" in handle.birdc("show protocols all node1"),
        "the shutdown communication at BIRD",
    )
    assert _show(handle, "bgp", "neighbors")["neighbors"][0]["state"] == "Idle"
    assert "198.51.100.10/32" not in handle.birdc("show route")

    up = handle.exec("node1", [*cli, "enable", "192.168.80.254"], timeout=20)
    assert up.returncode == 0, up.stderr
    wait_for(established, "the session to come back")
    wait_for(lambda: "198.51.100.10/32" in handle.birdc("show route"), "the VIP route again")
    refresh = handle.exec("node1", [*cli, "refresh", "192.168.80.254"], timeout=20)
    assert refresh.returncode == 0, refresh.stderr
    log = handle.log_path("daemon").read_text()
    assert token not in log  # the token is a secret: never logged
