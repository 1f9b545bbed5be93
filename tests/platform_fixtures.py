"""The whole platform as separate processes: the API (``video-api``) and a worker
(``python -m transcode_service``), on this run's isolated database, bucket and queues.

A helper module, not a conftest: the e2e and browser packages each bring these fixtures in
from their own conftest (package scope, so each package starts its own platform and no
worker outlives the package that started it), and tests import ``Platform`` from here."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from harness.broker import purge_queues
from harness.client import ApiClient
from harness.net import free_port
from harness.processes import Service, api_command, worker_command
from shared.topology import Topology

# Importing the whole app on a machine busy with other work can take long.
START_WITHIN = 120.0


@dataclass(frozen=True)
class Ports:
    """Free ports for the processes a test starts: the API's, and a worker's health server's."""

    api: int = field(default_factory=free_port)
    health: int = field(default_factory=free_port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api}"

    def env(self) -> dict[str, str]:
        """The settings that put the processes on these ports; the links the API hands out
        point at its own."""
        return {
            "VIDEO_SERVER__PORT": str(self.api),
            "VIDEO_SERVER__PUBLIC_BASE_URL": self.api_url,
            "VIDEO_WORKER__HEALTH_PORT": str(self.health),
        }


@contextlib.asynccontextmanager
async def running(*services: Service) -> AsyncIterator[None]:
    """The services started and listening; stopped, the last started first, however the
    block ends."""
    try:
        for service in services:
            service.start()
        for service in services:
            await service.wait_ready(START_WITHIN)
        yield
    finally:
        for service in reversed(services):
            await service.stop()


@dataclass
class Platform:
    api: str  # the API's base URL
    api_service: Service
    worker_service: Service


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def platform(
    platform_env: dict[str, str],
    declared_topology: Topology,
    amqp: AbstractRobustConnection,
    tmp_root: Path,
) -> AsyncIterator[Platform]:
    """Started for the requesting package only, so its processes never consume the queues
    that later test packages use; whatever it left queued is purged when it stops."""
    ports = Ports()
    env = {
        **platform_env,
        **ports.env(),
        # Small rungs keep the suite fast; the default ladder is covered by worker tests.
        "VIDEO_WORKER__RUNGS": "[360, 240]",
        # Sources of 20 s and more are transcoded in 12 s chunks (test_chunked.py); the
        # other tests' clips are shorter.
        "VIDEO_WORKER__CHUNK_MIN_DURATION": "20",
        "VIDEO_WORKER__CHUNK_SECONDS": "12",
        "VIDEO_LOGGING__JSON_OUTPUT": "true",
    }
    logs = tmp_root / "e2e-logs"
    logs.mkdir(exist_ok=True)
    api = Service("api", api_command(), env, ports.api, logs / "api.log")
    worker = Service("worker", worker_command(), env, ports.health, logs / "worker.log")
    try:
        async with running(api, worker):
            yield Platform(ports.api_url, api, worker)
    finally:
        channel = await amqp.channel()
        await purge_queues(channel, declared_topology.all_queues())
        await channel.close()


@pytest_asyncio.fixture(loop_scope="session")
async def client(platform: Platform) -> AsyncIterator[ApiClient]:
    """A newly signed-up user of the platform."""
    async with aiohttp.ClientSession() as session:
        user = ApiClient(session, platform.api)
        await user.sign_up("e2e")
        yield user
