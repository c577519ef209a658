"""A real browser on a node's dashboard, run *inside* the node's network namespace (its API
listens on 127.0.0.1 there): ``python -m tests.lab.support.dashboard_browser --url ...
--status FILE --control FILE --screenshot FILE``, spawned by the test with `LabHandle.spawn`.

It opens the page in Debian's chromium (never a downloaded browser), records in the page
(``Date.now()``) every change of an HA group's role text, and reports through a JSON status
file, phase by phase:

- ``ready``: the page shows the group; what it shows (node name, headings, role) and what it
  was sent (the page, its assets, the rendered DOM), for the test's checks;
- ``changed``: the node's API reported another role for the group (``api_at``, polled here
  every `API_POLL_S`), then the page showed it within a bounded `PAGE_WAIT_MS` wait or not
  (``page_at``: when its text changed, measured in the page); a screenshot is taken;
- ``offline``: on the control command ``{"expect_offline": true}`` (after the test stopped the
  daemon), whether the page said it was offline within `OFFLINE_WAIT_MS`;
- ``done``: finished (also on ``{"stop": true}``, on a timeout or an error: ``error``).

Every wait is bounded; the whole run lasts at most ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1366, "height": 860}
#: the issue's acceptance bound: the page shows a new role within 2 s of the API
PAGE_WAIT_MS = 2000
OFFLINE_WAIT_MS = 10_000
API_POLL_S = 0.025
LOAD_TIMEOUT_MS = 30_000
ASSETS = ("/", "/static/dashboard.js", "/static/dashboard.css")

# Installed in the page: a log of the role texts of group `group`, each with Date.now()
# when it first showed (the table is re-rendered on each refresh, so compare texts).
OBSERVE_ROLE = """group => {
  const read = () => {
    const node = document.querySelector(`[data-ha-group="${group}"] [data-field="role"]`);
    return node ? node.textContent : null;
  };
  window.__roleLog = [{text: read(), at: Date.now()}];
  new MutationObserver(() => {
    const text = read();
    const log = window.__roleLog;
    if (text !== log[log.length - 1].text) log.push({text, at: Date.now()});
  }).observe(document.getElementById("ha-rows"), {
    childList: true, subtree: true, characterData: true,
  });
}"""


class Reporter:
    """The status file (rewritten atomically) and the control file of one run."""

    def __init__(self, status: Path, control: Path) -> None:
        self.status_path = status
        self.control_path = control
        self.status: dict[str, Any] = {"phase": "starting", "error": None}

    def update(self, **values: Any) -> None:
        self.status.update(values)
        tmp = self.status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status))
        tmp.replace(self.status_path)

    def command(self) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self.control_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return value


def api_role(base: str, group: int) -> str | None:
    """The group's role as the node's API reports it now (None: unknown or unreachable)."""
    try:
        with urllib.request.urlopen(f"{base}/api/v1/ha", timeout=1.0) as response:
            groups = json.load(response)["groups"]
    except (OSError, ValueError, KeyError):
        return None
    return next((str(g["role"]) for g in groups if g["id"] == group), None)


def fetch_text(base: str, path: str) -> str:
    with urllib.request.urlopen(base + path, timeout=5.0) as response:
        text: str = response.read().decode()
    return text


def role_selector(group: int) -> str:
    return f'[data-ha-group="{group}"] [data-field="role"]'


def page_role(page: Page, group: int) -> str:
    return page.text_content(role_selector(group)) or ""


def open_dashboard(page: Page, base: str, group: int, reporter: Reporter) -> None:
    """Load the page, start the role log, report what it shows and what it was sent."""
    page.goto(base + "/", timeout=LOAD_TIMEOUT_MS)
    page.wait_for_selector(role_selector(group), timeout=LOAD_TIMEOUT_MS)
    page.wait_for_function("document.body.dataset.link === 'live'", timeout=LOAD_TIMEOUT_MS)
    page.evaluate(OBSERVE_ROLE, group)
    sources = {path: fetch_text(base, path) for path in ASSETS}
    reporter.update(
        phase="ready",
        node_name=page.text_content("#node-name"),
        headings=page.locator("h1, h2").all_text_contents(),
        role=page_role(page, group),
        api_role=api_role(base, group),
        sources=sources,
        dom=page.content(),
    )


def watch_failover(page: Page, base: str, group: int, deadline: float, rep: Reporter) -> None:
    """Wait (until ``deadline``) for the API to report a new role; then give the page at most
    `PAGE_WAIT_MS` to show it, and report both times."""
    before = rep.status["api_role"]
    while time.monotonic() < deadline and not rep.command().get("stop"):
        now_role = api_role(base, group)
        if now_role is not None and now_role != before:
            api_at = time.time() * 1000
            break
        time.sleep(API_POLL_S)
    else:
        rep.update(error=f"the API kept reporting role {before!r}")
        return
    try:
        page.wait_for_function(
            "([sel, role]) => document.querySelector(sel)?.textContent === role",
            arg=[role_selector(group), now_role],
            timeout=PAGE_WAIT_MS,
        )
        shown = True
    except PlaywrightTimeout:
        shown = False
    log: list[dict[str, Any]] = page.evaluate("window.__roleLog")
    page_at = next((e["at"] for e in log if e["text"] == now_role), None)
    rep.update(
        phase="changed",
        new_role=now_role,
        api_at=api_at,
        page_shown=shown,
        page_at=page_at,
        page_role=page_role(page, group),
        role_log=log,
    )


def watch_offline(page: Page, deadline: float, rep: Reporter) -> None:
    """On the control command, report whether the page says it is offline (bounded)."""
    while time.monotonic() < deadline:
        command = rep.command()
        if command.get("stop"):
            return
        if command.get("expect_offline"):
            break
        time.sleep(0.05)
    else:
        return
    try:
        page.wait_for_function("document.body.dataset.link === 'offline'", timeout=OFFLINE_WAIT_MS)
        shown = True
    except PlaywrightTimeout:
        shown = False
    rep.update(phase="offline", offline_shown=shown, link_text=page.text_content("#link"))


def run(args: argparse.Namespace) -> None:
    reporter = Reporter(args.status, args.control)
    deadline = time.monotonic() + args.timeout
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)  # type: ignore[arg-type]
                open_dashboard(page, args.url, args.group, reporter)
                watch_failover(page, args.url, args.group, deadline, reporter)
                page.wait_for_timeout(300)  # let the timeline take the failover's events
                page.screenshot(path=str(args.screenshot), full_page=True)
                reporter.update(screenshot=str(args.screenshot))
                watch_offline(page, deadline, reporter)
            finally:
                browser.close()
    except Exception as exc:  # reported to the test, which fails with it
        reporter.update(error=f"{type(exc).__name__}: {exc}")
    finally:
        reporter.update(phase="done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--group", type=int, default=1)
    parser.add_argument("--status", type=Path, required=True)
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--screenshot", type=Path, required=True)
    parser.add_argument("--timeout", type=float, default=80.0)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
