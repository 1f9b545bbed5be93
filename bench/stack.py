"""The platform under test, isolated: its own database, bucket and queue prefix, the API and a
worker as subprocesses on them, and the removal of all of it at the end."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import aio_pika
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.console import BenchError, say
from harness.broker import purge_queues
from harness.database import create_database, drop_database
from harness.net import free_port
from harness.processes import Service, api_command, worker_command
from harness.storage import delete_bucket
from shared.s3 import s3_client
from shared.settings import RabbitMQSettings, S3Settings, Settings, SettingsError, load_settings
from shared.topology import Topology, declare_topology, delete_topology

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
CHECK_TIMEOUT = 10.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


async def stop_service(service: Service) -> None:
    if await service.stop(STOP_TIMEOUT):
        say(f"{service.name} did not stop within {STOP_TIMEOUT} s; it was killed")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class Stack:
    """``async with Stack() as stack``: isolated resources and the API; workers are started
    (fresh) by ``start_worker`` and stopped by ``stop_worker``. Everything is removed on exit,
    whatever happened."""

    def __init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        try:
            self.base: Settings = load_settings()
        except SettingsError as exc:
            raise BenchError(str(exc)) from None
        url = make_url(self.base.database.url.get_secret_value())
        self.database_url = url.set(database=f"video_bench_{run}").render_as_string(
            hide_password=False
        )
        self.bucket = f"bench-{run}"
        self.prefix = f"b{run}."
        self.s3_settings: S3Settings = self.base.s3.model_copy(update={"bucket": self.bucket})
        self.rabbit_settings: RabbitMQSettings = self.base.rabbitmq.model_copy(
            update={"prefix": self.prefix}
        )
        self.topology = Topology.from_settings(self.rabbit_settings)
        self.work_dir = OUT / f"worker-{run}"
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.worker: Service | None = None
        self.api: Service | None = None
        self._exit = AsyncExitStack()

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "VIDEO_DATABASE__URL": self.database_url,
                "VIDEO_RABBITMQ__PREFIX": self.prefix,
                "VIDEO_S3__BUCKET": self.bucket,
                "VIDEO_SERVER__PORT": str(self.api_port),
                "VIDEO_SERVER__PUBLIC_BASE_URL": self.api_url,
                "VIDEO_WORKER__WORK_DIR": str(self.work_dir),
                "VIDEO_WORKER__SHUTDOWN_GRACE": "5",
                "VIDEO_LOGGING__JSON_OUTPUT": "true",
                **extra,
            }
        )
        return env

    async def __aenter__(self) -> Stack:
        await self.check()
        try:
            await self._create()
        except BaseException:
            await self._exit.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        say("cleaning up: processes, queues, bucket, database")
        await self._exit.aclose()

    def _on_exit(self, what: str, callback: Callable[[], Awaitable[None]]) -> None:
        async def guarded() -> None:
            try:
                await asyncio.shield(callback())
            except Exception as exc:
                say(f"warning: cleanup of {what} failed: {_first_line(exc)}")

        self._exit.push_async_callback(guarded)

    async def check(self) -> None:
        """Fail with one clear line when MariaDB, RabbitMQ or S3 is not reachable."""
        for tool in ("ffmpeg", "ffprobe", "curl"):
            if shutil.which(tool) is None:
                raise BenchError(f"{tool} is not installed")
        hint = "is the local stack up? (make up)"

        async def database() -> None:
            engine = create_async_engine(make_url(self.database_url).set(database=""))
            try:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            finally:
                await engine.dispose()

        async def broker() -> None:
            connection = await aio_pika.connect(
                self.rabbit_settings.url.get_secret_value(), timeout=CHECK_TIMEOUT
            )
            await connection.close()

        async def storage() -> None:
            async with s3_client(self.s3_settings) as s3:
                await s3.list_buckets()

        for name, probe in (("MariaDB", database), ("RabbitMQ", broker), ("S3", storage)):
            try:
                await asyncio.wait_for(probe(), CHECK_TIMEOUT)
            except Exception as exc:
                raise BenchError(f"{name} is not reachable ({_first_line(exc)}); {hint}") from None

    async def _create(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        await create_database(self.database_url)

        async def remove_database() -> None:
            await drop_database(self.database_url)

        self._on_exit("the database", remove_database)

        async with s3_client(self.s3_settings) as s3:
            await s3.create_bucket(Bucket=self.bucket)
        self._on_exit("the bucket", self._delete_bucket)

        connection = await aio_pika.connect(self.rabbit_settings.url.get_secret_value())
        try:
            channel = await connection.channel()
            await declare_topology(channel, self.topology)
        finally:
            await connection.close()
        self._on_exit("the queues", self._delete_topology)

        async def remove_work_dir() -> None:
            await asyncio.to_thread(shutil.rmtree, self.work_dir, True)

        self._on_exit("the worker directory", remove_work_dir)
        database = make_url(self.database_url).database
        say(f"isolated: database {database}, bucket {self.bucket}, prefix {self.prefix}")

        api = Service("api", api_command(), self.env(), self.api_port, OUT / "api.log")
        self._on_exit("the API", lambda: stop_service(api))
        api.start()
        await api.wait_ready(READY_TIMEOUT)
        self.api = api
        self._on_exit("the worker", self.stop_worker)

    async def _delete_bucket(self) -> None:
        async with s3_client(self.s3_settings) as s3:
            await delete_bucket(s3, self.bucket)

    async def _delete_topology(self) -> None:
        connection = await aio_pika.connect(self.rabbit_settings.url.get_secret_value())
        try:
            await delete_topology(await connection.channel(), self.topology)
        finally:
            await connection.close()

    async def purge_jobs(self) -> int:
        """Drop every queued job (cover, transcode and their retry queues); returns how
        many messages were dropped. Used to discard a backlog the bench no longer needs."""
        dropped = 0
        connection = await aio_pika.connect(self.rabbit_settings.url.get_secret_value())
        try:
            channel = await connection.channel()
            for kind in ("cover", "transcode"):
                names = [self.topology.job_queue(kind)] + [
                    self.topology.retry_queue(kind, step)
                    for step in range(len(self.topology.retry_delays_ms))
                ]
                dropped += await purge_queues(channel, names)
        finally:
            await connection.close()
        return dropped

    def worker_service(self, label: str, **extra_env: str) -> Service:
        """A worker process on the stack's resources (the Python interpreter itself, no
        wrapper), logging to ``OUT/<label>.log``; not started yet."""
        port = free_port()
        return Service(
            label,
            worker_command(),
            self.env(VIDEO_WORKER__HEALTH_PORT=str(port), **extra_env),
            port,
            OUT / f"{label}.log",
        )

    async def start_worker(self, label: str = "worker", **extra_env: str) -> Service:
        """A fresh worker process, in place of the one running."""
        await self.stop_worker()
        worker = self.worker_service(label, **extra_env)
        worker.start()
        self.worker = worker
        await worker.wait_ready(READY_TIMEOUT)
        return worker

    async def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await stop_service(worker)
