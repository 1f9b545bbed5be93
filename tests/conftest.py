"""Fixtures over the real services, isolated per run.

Each pytest run gets its own database (``video_test_<run>``), its own RabbitMQ name prefix
(``t<run>.``) and its own bucket (``test-<run>``), so a leftover or parallel run cannot
interfere. Everything is removed at the end of the run. The services themselves are started
by ``make test`` (scripts/stack.sh up) before pytest runs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.engine import make_url

from harness.broker import Broker
from harness.database import create_database, drop_database
from harness.storage import delete_bucket
from shared.bucket_cors import apply_bucket_cors
from shared.s3 import s3_client
from shared.settings import Settings, load_settings
from shared.topology import Topology, declare_topology, delete_topology
from tests.store import Store

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

RUN_ID = uuid.uuid4().hex[:10]

# Most tests register many users from 127.0.0.1 and queue videos no worker consumes: they
# run with limits out of their way. The limit tests (tests/api/test_limits.py) start their
# own API with real, small limits.
LOOSE_LIMITS = {
    "auth_ip_attempts": 100_000,
    "auth_account_attempts": 1_000,
    "initiate_per_user": 10_000,
    "uploads_in_flight": 1_000,
    "transcodes_in_flight": 1_000,
    "bytes_per_user": 10**15,
}


def _test_settings(tmp_root: Path) -> Settings:
    base = load_settings()
    db_url = make_url(base.database.url.get_secret_value()).set(database=f"video_test_{RUN_ID}")
    return load_settings(
        database={
            **base.database.model_dump(),
            "url": db_url.render_as_string(hide_password=False),
        },
        rabbitmq={
            **base.rabbitmq.model_dump(),
            "url": base.rabbitmq.url.get_secret_value(),
            "prefix": f"t{RUN_ID}.",
            # Short backoff so retry paths finish quickly in tests.
            "retry_delays_ms": [300, 600, 1200],
        },
        s3={
            **base.s3.model_dump(mode="json"),
            "access_key": base.s3.access_key.get_secret_value(),
            "secret_key": base.s3.secret_key.get_secret_value(),
            "bucket": f"test-{RUN_ID}",
        },
        worker={
            **base.worker.model_dump(mode="json"),
            "work_dir": str(tmp_root / "worker"),
            "health_port": 0,
            "shutdown_grace": 10,
        },
        server={**base.server.model_dump(mode="json"), "port": 0},
        limits={**base.limits.model_dump(), **LOOSE_LIMITS},
        auth={
            **base.auth.model_dump(),
            "jwt_secret": base.auth.jwt_secret.get_secret_value(),
        },
    )


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def settings(tmp_root: Path) -> Settings:
    return _test_settings(tmp_root)


@pytest.fixture(scope="session")
def topology(settings: Settings) -> Topology:
    return Topology.from_settings(settings.rabbitmq)


@pytest.fixture(scope="session")
def settings_env(settings: Settings) -> Iterator[dict[str, str]]:
    """Environment variables that make a child process (API, worker) use this run's
    isolated resources."""
    env = dict(os.environ)
    env.update(
        {
            "VIDEO_DATABASE__URL": settings.database.url.get_secret_value(),
            "VIDEO_RABBITMQ__PREFIX": settings.rabbitmq.prefix,
            "VIDEO_RABBITMQ__RETRY_DELAYS_MS": json.dumps(settings.rabbitmq.retry_delays_ms),
            "VIDEO_S3__BUCKET": settings.s3.bucket,
            "VIDEO_WORKER__WORK_DIR": str(settings.worker.work_dir),
            "VIDEO_WORKER__SHUTDOWN_GRACE": str(settings.worker.shutdown_grace),
            **{f"VIDEO_LIMITS__{key.upper()}": str(value) for key, value in LOOSE_LIMITS.items()},
        }
    )
    yield env


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[str]:
    """A fresh, migrated database for this run; dropped afterwards. Yields its URL."""
    url = settings.database.url.get_secret_value()
    await create_database(url)
    try:
        yield url
    finally:
        await drop_database(url)


@pytest.fixture(scope="session")
async def bucket(settings: Settings) -> AsyncIterator[str]:
    """This run's bucket, emptied and removed at the end."""
    async with s3_client(settings.s3) as s3:
        await s3.create_bucket(Bucket=settings.s3.bucket)
        # As the stack setup does: pages on the configured origins may PUT and GET.
        await apply_bucket_cors(s3, settings.s3.bucket, settings.server.cors_origins)
        try:
            yield settings.s3.bucket
        finally:
            await delete_bucket(s3, settings.s3.bucket)


@pytest.fixture(scope="session")
def platform_env(
    settings_env: dict[str, str], database: str, bucket: str, declared_topology: Topology
) -> dict[str, str]:
    """``settings_env`` once everything it names exists (database, bucket, queues): what
    starting the API or a worker as a process needs."""
    return settings_env


@pytest.fixture(scope="session")
async def s3(settings: Settings, bucket: str) -> AsyncIterator[S3Client]:
    """A client of this run's S3, once the bucket exists."""
    async with s3_client(settings.s3) as client:
        yield client


@pytest.fixture(scope="session")
def store(s3: S3Client, bucket: str) -> Store:
    return Store(s3, bucket)


@pytest.fixture(scope="session")
async def amqp(settings: Settings) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(settings.rabbitmq.url.get_secret_value())
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="session")
async def declared_topology(
    amqp: AbstractRobustConnection, topology: Topology
) -> AsyncIterator[Topology]:
    """This run's exchanges and queues, declared once and deleted at the end."""
    channel = await amqp.channel()
    await declare_topology(channel, topology)
    try:
        yield topology
    finally:
        cleanup = await amqp.channel()
        await delete_topology(cleanup, topology)
        await cleanup.close()


@pytest.fixture(scope="session")
def broker(amqp: AbstractRobustConnection, declared_topology: Topology) -> Broker:
    """This run's broker: publish jobs and watch events on its declared topology."""
    return Broker(amqp, declared_topology)
