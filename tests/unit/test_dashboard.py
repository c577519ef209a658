"""The dashboard's page and assets, served in-process: local references only, the right
content types, no other host named anywhere, readable colours (WCAG AA) and API paths that
exist. The real-browser test is tests/lab/test_dashboard.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx
import pytest

from appliance.state import StateStore
from web.app import create_app
from web.dashboard import ASSETS, STATIC_DIR

PAGE_ASSETS = {"/static/dashboard.js": "text/javascript", "/static/dashboard.css": "text/css"}
#: every JSON document the page fetches (dashboard.js), relative to /api/v1
API_PATHS = ("/node", "/ha", "/bgp/neighbors", "/services", "/sync", "/events", "/stream")
#: (foreground, background) custom properties of dashboard.css that are drawn together
COLOUR_PAIRS = [
    ("text", "page-bg"),
    ("text", "card-bg"),
    ("muted", "card-bg"),
    ("muted", "page-bg"),
    ("head-text", "head-bg"),
    ("head-muted", "head-bg"),
    *[(f"{tone}-text", f"{tone}-bg") for tone in ("ok", "info", "warn", "bad", "idle")],
]
WCAG_AA = 4.5
#: a URL scheme, or a protocol-relative //host.tld/ reference
OTHER_HOST = re.compile(r"\b(?:https?|wss?|ftp):|//[a-z0-9.-]+\.[a-z]{2,}/", re.I)


class _References(HTMLParser):
    """Every src/href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v for k, v in attrs if k in ("src", "href") and v is not None]


async def _get(path: str, method: str = "GET") -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(StateStore()))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        return await http.request(method, path)


def _references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.found


async def test_the_page_references_only_its_own_assets() -> None:
    response = await _get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    refs = _references(response.text)
    assert set(refs) - {"data:,"} == set(PAGE_ASSETS)
    assert all((r.startswith("/") and not r.startswith("//")) or r == "data:," for r in refs)
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<h1" in response.text and 'lang="en"' in response.text


@pytest.mark.parametrize(("path", "kind"), sorted(PAGE_ASSETS.items()))
async def test_assets_have_their_content_types(path: str, kind: str) -> None:
    response = await _get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{kind}; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (STATIC_DIR / path.rsplit("/", 1)[1]).read_bytes()
    head = await _get(path, "HEAD")
    assert head.status_code == 200 and head.content == b""


async def test_nothing_else_is_served_under_static() -> None:
    for path in ("/static/", "/static/../app.py", "/static/dashboard.py", "/static/x.js"):
        assert (await _get(path)).status_code == 404, path


def test_no_asset_names_another_host() -> None:
    for asset in ASSETS:
        text = (STATIC_DIR / asset.file).read_text()
        assert not OTHER_HOST.search(text), asset.file
        assert "@import" not in text and "url(" not in text, asset.file


def test_the_script_never_renders_markup_from_data() -> None:
    script = (STATIC_DIR / "dashboard.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


async def test_every_api_path_the_page_uses_exists() -> None:
    script = (STATIC_DIR / "dashboard.js").read_text()
    for path in API_PATHS:
        assert f'"{path}' in script or f"`{path}" in script or f"/{path.strip('/')}`" in script
        if path == "/stream":
            continue  # endless: its route is covered by tests/unit/test_journal_api.py
        response = await _get(f"/api/v1{path}")
        # missing parts answer with a JSON error; an unknown route with Starlette's plain 404
        assert response.headers["content-type"] == "application/json", (path, response.text)


def _css_colours() -> dict[str, str]:
    css = (STATIC_DIR / "dashboard.css").read_text()
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6})\s*;", css))


def _luminance(colour: str) -> float:
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    high, low = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_ratio_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize(("fg", "bg"), COLOUR_PAIRS)
def test_colours_meet_wcag_aa(fg: str, bg: str) -> None:
    colours = _css_colours()
    ratio = contrast(colours[fg], colours[bg])
    assert ratio >= WCAG_AA, f"{fg} on {bg}: {ratio:.2f}:1"


def test_every_tone_the_script_uses_is_styled() -> None:
    script = (STATIC_DIR / "dashboard.js").read_text()
    css = (STATIC_DIR / "dashboard.css").read_text()
    tones = set(re.findall(r'"(ok|info|warn|bad|idle)"', script))
    assert tones == {"ok", "info", "warn", "bad", "idle"}
    for tone in tones:
        assert f".tone-{tone} " in css, tone
