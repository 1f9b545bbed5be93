"""Typed application keys: every shared resource of the app lives under one of these."""

from __future__ import annotations

import asyncio
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api_service.metrics import Metrics
from api_service.playlist_cache import SignedPlaylistCache
from api_service.presign import BulkPresigner
from api_service.storage import Storage
from shared.settings import Settings
from shared.topology import Topology

SETTINGS = web.AppKey("settings", Settings)
TOPOLOGY = web.AppKey("topology", Topology)
METRICS = web.AppKey("metrics", Metrics)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
STORAGE = web.AppKey("storage", Storage)
AMQP = web.AppKey("amqp", AbstractRobustConnection)
# Set after a transaction wrote outbox rows, so the relay publishes without waiting a poll.
OUTBOX_WAKE = web.AppKey("outbox_wake", asyncio.Event)
OPENAPI = web.AppKey("openapi", dict[str, Any])
PRESIGNER = web.AppKey("presigner", BulkPresigner)
PLAYLIST_CACHE = web.AppKey("playlist_cache", SignedPlaylistCache)
