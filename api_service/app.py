"""The application factory. Resources are created in cleanup_ctx generators at start-up and
released in reverse order at shutdown; nothing is created at import time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import structlog
from aio_pika.abc import AbstractRobustConnection
from aio_pika.exceptions import AMQPError
from aiohttp import web

from api_service.background import background_task
from api_service.context import (
    AMQP,
    ENGINE,
    METRICS,
    OUTBOX_WAKE,
    SESSIONS,
    SETTINGS,
    STORAGE,
    TOPOLOGY,
)
from api_service.db.engine import make_engine, make_sessionmaker
from api_service.events.consumer import EventConsumer
from api_service.http.cors import setup_cors
from api_service.http.errors import error_middleware
from api_service.http.middleware import request_context_middleware
from api_service.metrics import Metrics
from api_service.openapi import setup_openapi
from api_service.outbox import OutboxRelay
from api_service.routes import live, ops, playback, users, video_edit, videos
from api_service.storage import open_storage
from api_service.uploads import routes as multipart
from api_service.uploads.janitor import periodic_janitor
from api_service.webapp import setup_webapp
from api_service.webhooks import routes as webhooks
from api_service.webhooks.dispatcher import webhook_dispatcher
from shared.settings import Settings
from shared.topology import Topology, declare_topology

log = structlog.get_logger(__name__)

BROKER_STARTUP_WAIT = 30.0


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = make_engine(app[SETTINGS].database)
    app[ENGINE] = engine
    app[SESSIONS] = make_sessionmaker(engine)
    yield
    await engine.dispose()


async def _storage(app: web.Application) -> AsyncIterator[None]:
    async with open_storage(app[SETTINGS].s3) as storage:
        app[STORAGE] = storage
        yield


async def _connect_broker(url: str) -> AbstractRobustConnection:
    # The broker may come up after us (docker compose); wait a little before giving up.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BROKER_STARTUP_WAIT
    while True:
        try:
            return await aio_pika.connect_robust(url)
        except (OSError, AMQPError) as exc:
            if loop.time() >= deadline:
                raise
            log.warning("broker not reachable yet, retrying", error=repr(exc))
            await asyncio.sleep(1.0)


async def _broker(app: web.Application) -> AsyncIterator[None]:
    connection = await _connect_broker(app[SETTINGS].rabbitmq.url.get_secret_value())
    app[AMQP] = connection
    try:
        channel = await connection.channel()
        await declare_topology(channel, app[TOPOLOGY])
        await channel.close()
        yield
    finally:
        await connection.close()


async def _outbox_relay(app: web.Application) -> AsyncIterator[None]:
    relay = OutboxRelay(app[SETTINGS], app[SESSIONS], app[AMQP], app[METRICS], app[OUTBOX_WAKE])
    try:
        async with background_task(relay.run(), "outbox-relay"):
            yield
    finally:
        await relay.close()


async def _event_consumer(app: web.Application) -> AsyncIterator[None]:
    consumer = EventConsumer(app[TOPOLOGY], app[SESSIONS], app[STORAGE], app[AMQP], app[METRICS])
    await consumer.start()
    try:
        yield
    finally:
        await consumer.stop(grace=app[SETTINGS].server.shutdown_timeout)


def create_app(
    settings: Settings, *, run_relay: bool = True, run_consumers: bool = True
) -> web.Application:
    """Build the API. Tests may switch off the background tasks of extra app instances so
    that only one instance consumes the run's events."""
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[request_context_middleware, error_middleware],
    )
    app[SETTINGS] = settings
    app[TOPOLOGY] = Topology.from_settings(settings.rabbitmq)
    app[METRICS] = Metrics()
    app[OUTBOX_WAKE] = asyncio.Event()
    app.cleanup_ctx.extend([_database, _storage, playback.signing, _broker])
    if run_relay:
        app.cleanup_ctx.append(_outbox_relay)
    if run_consumers:
        app.cleanup_ctx.append(_event_consumer)
    if run_relay:
        app.cleanup_ctx.append(webhook_dispatcher)
    if run_relay and settings.upload.janitor_interval > 0:
        app.cleanup_ctx.append(periodic_janitor)
    tables = (
        users.routes,
        videos.routes,
        video_edit.routes,
        multipart.routes,
        webhooks.routes,
        playback.routes,
    )
    for table in (*tables, live.routes, ops.routes):
        app.router.add_routes(table)
    setup_openapi(app, str(settings.server.public_base_url).rstrip("/"))
    setup_webapp(app, settings.server.hlsjs_dir)
    setup_cors(app, settings.server.cors_origins)  # last: it covers the routes that exist
    return app
