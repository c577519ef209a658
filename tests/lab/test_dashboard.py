"""The dashboard in a real browser (Debian's chromium, driven by Playwright inside node2's
namespace where its API listens): scenario 1 with two HA nodes, node2's page open while it is
backup; node1's link goes down and node2's page shows it active, without a reload, within 2 s
of node2's API reporting it (the issue's acceptance bound: measured in the page with
Date.now() against the API poll in the same namespace). The page shows the node's name and
its sections, never the web token or the HA key, and says it is offline once the daemon stops.
A screenshot is kept: under tmp_path and as tests/artifacts/dashboard.png."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.lab.api import LabHandle
from tests.lab.support.dataplane import ToolRun
from tests.lab.support.ha import EXAMPLES, HA_KEY, active, node_config, two_nodes, wait_until

pytestmark = pytest.mark.lab

WEB_TOKEN = EXAMPLES / "secrets" / "web.token"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
#: the issue's acceptance bound, also the driver's wait for the page after the API changed
SHOWN_WITHIN_MS = 2000
BROWSER_READY_S = 60.0
NODES = ("node1", "node2")


def with_token_file(config: Path) -> Path:
    """The config with ``web.token_file`` set, so the daemon holds a secret the page must
    never show."""
    tree: dict[str, Any] = yaml.safe_load(config.read_text())
    tree.setdefault("web", {})["token_file"] = str(WEB_TOKEN)
    config.write_text(yaml.safe_dump(tree, sort_keys=False))
    return config


def start_browser(handle: LabHandle, tmp_path: Path) -> tuple[ToolRun, Path]:
    """The driver in node2's namespace, on node2's dashboard; returns once the page is live."""
    browser = ToolRun(handle, tmp_path, "dashboard-browser")
    screenshot = tmp_path / "dashboard.png"
    browser.spawn(
        [
            sys.executable,
            "-m",
            "tests.lab.support.dashboard_browser",
            "--url=http://127.0.0.1:8080",
            "--group=1",
            f"--status={browser.status_path}",
            f"--control={browser.control_path}",
            f"--screenshot={screenshot}",
        ],
        host="node2",
    )
    browser.wait(
        "the dashboard to load in the browser",
        lambda s: s["phase"] != "starting" or s["error"] is not None,
        timeout=BROWSER_READY_S,
    )
    return browser, screenshot


def check_page(status: dict[str, Any]) -> None:
    """What node2's page shows and was sent: its name, its sections, no secret."""
    assert status["error"] is None, status["error"]
    assert status["node_name"] == "node2"
    assert {"High availability", "BGP sessions", "Services"} <= set(status["headings"])
    assert status["role"] == status["api_role"] == "backup"
    sent = [*status["sources"].values(), status["dom"]]
    for secret_file in (WEB_TOKEN, HA_KEY):
        secret = secret_file.read_text().strip()
        assert secret and not any(secret in text for text in sent), secret_file.name


def test_page_shows_failover_live_within_two_seconds(
    lab_factory: Callable[..., LabHandle], tmp_path: Path
) -> None:
    configs = {node: node_config(tmp_path, node) for node in NODES}
    with_token_file(configs["node2"])
    handle, _, _ = two_nodes(lab_factory, configs)
    browser, screenshot = start_browser(handle, tmp_path)
    try:
        check_page(browser.wait("the page to be ready", lambda s: s["phase"] == "ready"))

        handle.exec("node1", ["ip", "link", "set", "eth0", "down"], timeout=5, check=True)
        wait_until("node2 to become active", lambda: active(handle, "node2"))
        result = browser.wait(
            "the browser's failover report",
            lambda s: "new_role" in s or s["phase"] == "done",
        )
        assert result["error"] is None, result["error"]
        assert result["new_role"] == "active"
        assert result["page_shown"], f"the page still showed {result['page_role']!r}"
        assert result["page_at"] is not None, result["role_log"]
        assert result["page_at"] - result["api_at"] <= SHOWN_WITHIN_MS, result["role_log"]

        shot = browser.wait("the screenshot", lambda s: "screenshot" in s or s["phase"] == "done")
        assert shot.get("screenshot") and screenshot.stat().st_size > 0
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(screenshot, ARTIFACTS / "dashboard.png")

        handle.stop("node2-daemon")
        browser.control(expect_offline=True)
        offline = browser.wait("the offline report", lambda s: s["phase"] in ("offline", "done"))
        assert offline.get("offline_shown"), offline.get("link_text") or offline["error"]
    finally:
        browser.control(stop=True)
        browser.wait("the browser to finish", lambda s: s["phase"] == "done")
