"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api_service.context import AMQP, ENGINE, METRICS, STORAGE
from api_service.http.errors import RETRY_AFTER_SECONDS
from api_service.http.operations import operation
from api_service.http.schemas import HealthResponse, ReadyResponse

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

CHECK_TIMEOUT = 3.0


@routes.get("/healthz")
@operation("Liveness (no dependencies)", "operations", response=HealthResponse)
async def healthz(request: web.Request) -> web.Response:
    # Liveness only: a dependency outage must not get the process restarted.
    return web.json_response(HealthResponse().model_dump())


async def _check_database(app: web.Application) -> None:
    async with app[ENGINE].connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_broker(app: web.Application) -> None:
    connection = app[AMQP]
    if connection.is_closed:
        raise ConnectionError("connection closed")
    # A robust connection may still be reconnecting; a channel proves the broker answers.
    channel = await connection.channel(publisher_confirms=False)
    await channel.close()


async def _check_storage(app: web.Application) -> None:
    await app[STORAGE].ping()


@routes.get("/readyz")
@operation(
    "Readiness: database, broker and storage reachable",
    "operations",
    response=ReadyResponse,
    errors=(503,),
)
async def readyz(request: web.Request) -> web.Response:
    checks = {
        "database": _check_database,
        "broker": _check_broker,
        "storage": _check_storage,
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(request.app), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:
            log.warning("readiness check failed", check=name, error=repr(exc))
            results[name] = "unavailable"
    ready = all(value == "ok" for value in results.values())
    body = ReadyResponse(status="ok" if ready else "unavailable", checks=results)
    return web.json_response(
        body.model_dump(),
        status=200 if ready else 503,
        headers=None if ready else {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


@routes.get("/metrics")
@operation("Prometheus metrics", "operations", content_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    payload = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=payload)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
