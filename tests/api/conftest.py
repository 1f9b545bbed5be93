"""Fixtures of the API tests: the real app on a real port, over this run's isolated database,
bucket and broker prefix. The broker is reached through a TcpProxy so a test can take it
away. The app is package-scoped: it stops consuming events before other packages' tests run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from yarl import URL

from harness.broker import purge_queues
from shared.settings import Settings
from shared.topology import Topology
from tests.api.proxy import TcpProxy
from tests.api.support import Api, JobTap, User, start_api, with_overrides
from tests.api.videos import Videos
from tests.media import make_video
from tests.store import Store


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def broker_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", 5672)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def api(
    settings: Settings,
    database: str,
    bucket: str,
    declared_topology: Topology,
    broker_proxy: TcpProxy,
    amqp: AbstractRobustConnection,
) -> AsyncIterator[Api]:
    amqp_url = URL(settings.rabbitmq.url.get_secret_value())
    proxied = amqp_url.with_host("127.0.0.1").with_port(broker_proxy.port)
    api_settings = with_overrides(
        settings,
        rabbitmq={"url": SecretStr(str(proxied.update_query(reconnect_interval=0.5)))},
        server={"outbox_poll_interval": 0.2},
        # Test receivers listen on 127.0.0.1; quick retries.
        webhooks={
            "allow_private": True,
            "backoff_base": 0.2,
            "poll_interval": 0.1,
            "max_attempts": 4,
        },
    )
    instance = await start_api(api_settings)
    yield instance
    await instance.client.close()
    # No worker ran here: drop the jobs these tests queued so that a worker started by a
    # later package of the same run does not pick them up.
    channel = await amqp.channel()
    await purge_queues(channel, (declared_topology.cover_queue, declared_topology.transcode_queue))
    await channel.close()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def db(settings: Settings, database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def user(api: Api) -> User:
    return await api.register()


@pytest_asyncio.fixture(loop_scope="session")
async def other_user(api: Api) -> User:
    return await api.register()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def clip(tmp_root: Path) -> Path:
    path = tmp_root / "api-clip.mp4"
    if not path.exists():
        await asyncio.to_thread(make_video, path, duration=2.0, audio=True)
    return path


@pytest.fixture(scope="package")
def videos(
    api: Api,
    db: AsyncEngine,
    store: Store,
    clip: Path,
    amqp: AbstractRobustConnection,
    declared_topology: Topology,
) -> Videos:
    return Videos(api, db, store, clip, amqp, declared_topology)


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def job_tap(
    amqp: AbstractRobustConnection, declared_topology: Topology
) -> AsyncIterator[JobTap]:
    """A private queue bound like the job queues: sees a copy of every published job."""
    channel = await amqp.channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for kind in ("cover", "transcode"):
        await queue.bind(declared_topology.jobs_exchange, routing_key=kind)
    yield JobTap(channel, queue)
    await channel.close()
