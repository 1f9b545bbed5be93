"""The worker's small HTTP server: /healthz (the process is alive), /readyz (connected to
the broker and consuming; also says how ffmpeg is confined), /metrics (Prometheus, this
process's registry)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from transcode_service.metrics import Metrics

METRICS_KEY = web.AppKey("metrics", Metrics)
READY_KEY: web.AppKey[Callable[[], bool]] = web.AppKey("ready")
SANDBOX_KEY = web.AppKey("ffmpeg_sandbox", str)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[READY_KEY]()
    return web.json_response(
        {
            "status": "ready" if ready else "not ready",
            "ffmpeg_sandbox": request.app[SANDBOX_KEY],
        },
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS_KEY].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    metrics_: Metrics, ready: Callable[[], bool], ffmpeg_sandbox: str
) -> web.Application:
    app = web.Application()
    app[SANDBOX_KEY] = ffmpeg_sandbox
    app[METRICS_KEY] = metrics_
    app[READY_KEY] = ready
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


@asynccontextmanager
async def health_server(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app``; yields the bound port (``port`` 0 picks a free one)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        yield int(bound)
    finally:
        await runner.cleanup()
