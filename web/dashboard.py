"""The operator dashboard: ``/`` and its three static assets (``web/static``).

One HTML page, one script, one stylesheet, all served from the package: no CDN, no external
font, no build step. The page follows ``/api/v1/stream`` and refetches the JSON documents it
shows (see ``web/static/dashboard.js``). Every response carries a Content-Security-Policy that
allows only this origin, so even a mistaken reference to another host could not load.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["ASSETS", "SECURITY_HEADERS", "STATIC_DIR", "dashboard_routes"]

STATIC_DIR = Path(__file__).parent / "static"

#: Only this origin; no inline script or style; the page cannot be framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@attrs.frozen
class Asset:
    """A file of ``STATIC_DIR`` served at ``path`` with ``media_type``."""

    path: str
    file: str
    media_type: str


ASSETS = (
    Asset("/", "dashboard.html", "text/html; charset=utf-8"),
    Asset("/static/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"),
    Asset("/static/dashboard.css", "dashboard.css", "text/css; charset=utf-8"),
)


def _asset_route(asset: Asset) -> Route:
    """A GET route answering with the asset's bytes (read once, when the app is built)."""
    body = (STATIC_DIR / asset.file).read_bytes()

    async def serve(request: Request) -> Response:
        return Response(body, media_type=asset.media_type, headers=SECURITY_HEADERS)

    return Route(asset.path, serve, methods=["GET", "HEAD"])


def dashboard_routes() -> list[Route]:
    """The dashboard page and its assets (fixed paths: nothing else under ``/static``)."""
    return [_asset_route(asset) for asset in ASSETS]
