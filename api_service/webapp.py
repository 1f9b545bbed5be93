"""The web page: sign up or in, upload straight to S3, watch progress live, play with hls.js.

Plain HTML, CSS and a little JavaScript from ``api_service/static`` (package data). hls.js is
not in the repository: ``make web`` installs the npm package (pinned in web/package.json)
into web/node_modules, and the API serves its ``dist`` folder from ``server.hlsjs_dir``.
"""

from __future__ import annotations

from pathlib import Path

import structlog
from aiohttp import web

from api_service.http.errors import ApiError

STATIC_DIR = Path(__file__).resolve().parent / "static"
APP_PATH = "/app/"
HLSJS_PATH = "/app/vendor/hls"

log = structlog.get_logger(__name__)


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(APP_PATH)


async def _index(request: web.Request) -> web.StreamResponse:
    # The page must be revalidated so a new release's script is picked up.
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _hlsjs_missing(request: web.Request) -> web.StreamResponse:
    raise ApiError(
        404, "hlsjs_not_installed", "hls.js is not installed: run `make web` (npm) first"
    )


def setup_webapp(app: web.Application, hlsjs_dir: Path) -> None:
    app.router.add_get("/", _home)
    app.router.add_get(APP_PATH, _index)
    app.router.add_static("/app/static", STATIC_DIR)
    if (hlsjs_dir / "hls.min.js").is_file():
        app.router.add_static(HLSJS_PATH, hlsjs_dir)
    else:
        log.warning("hls.js not found; the page cannot play videos", hlsjs_dir=str(hlsjs_dir))
        app.router.add_get(HLSJS_PATH + "/{name:.*}", _hlsjs_missing)
