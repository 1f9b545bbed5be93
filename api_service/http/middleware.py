"""Request id (bound into every log line and echoed in a header) and request metrics."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import structlog
from aiohttp import web

from api_service.context import METRICS

REQUEST_ID_HEADER = "X-Request-ID"
# What nginx logs for a client that closed the connection before the response was done; the
# normal end of a live-progress stream, and no server error.
CLIENT_CLOSED = 499
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

log = structlog.get_logger("api_service.access")


def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    if resource is None:
        # Unknown routes share one label so random paths cannot blow up cardinality.
        return "unmatched"
    return resource.canonical


@web.middleware
async def request_context_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        response.headers[REQUEST_ID_HEADER] = request_id
        return response
    except asyncio.CancelledError:
        # aiohttp cancels the handler of a request whose client disconnected.
        if request.transport is None or request.transport.is_closing():
            status = CLIENT_CLOSED
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        metrics.http_requests.labels(route, request.method, str(status)).inc()
        metrics.http_duration.labels(route).observe(elapsed)
        # Our own access line: aiohttp's access logger runs outside the request context.
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round(elapsed * 1000, 1),
        )
        structlog.contextvars.clear_contextvars()
