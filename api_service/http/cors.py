"""CORS for browsers on other origins: the JSON API, its preflights and the HLS playlists.

aiohttp-cors answers the preflights (``OPTIONS``) and adds the headers to every response of
the routes under ``/api/``, including error responses, so a page can read why a call failed.
Credentials are never allowed: the API authenticates with a bearer header or a token in the
URL, not with cookies, which is also why ``*`` (the development default) is safe.

aiohttp-cors answers with the caller's origin (even for ``*``), so responses also get
``Vary: Origin``: a cached playlist fetched for one site must not be reused for another.
"""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp_cors
from aiohttp import web

from api_service.openapi import DOCS_PATH

# Response headers a page's script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS = ("X-Request-ID", "Retry-After", "WWW-Authenticate", "Content-Length")
PREFLIGHT_MAX_AGE = 3600


def setup_cors(app: web.Application, origins: Iterable[str]) -> None:
    """Call after every route is registered: only routes present now get CORS."""
    # aiohttp-cors has no annotations on ResourceOptions.
    options = aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
        allow_credentials=False,
        expose_headers=EXPOSED_HEADERS,
        allow_headers="*",
        allow_methods="*",
        max_age=PREFLIGHT_MAX_AGE,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    app.on_response_prepare.append(_vary_on_origin)  # after aiohttp-cors's own handler
    for route in list(app.router.routes()):
        resource = route.resource
        if resource is None or not isinstance(resource, web.Resource):
            continue
        path = resource.canonical
        if path.startswith("/api/") and not path.startswith(DOCS_PATH):
            cors.add(route)


async def _vary_on_origin(request: web.Request, response: web.StreamResponse) -> None:
    if "Access-Control-Allow-Origin" in response.headers:
        vary = response.headers.get("Vary")
        if vary is None:
            response.headers["Vary"] = "Origin"
        elif "origin" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Origin"
