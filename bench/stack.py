"""The platform under test, isolated: its own database, bucket and queue prefix, the API and a
worker as subprocesses on them, and the removal of all of it at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import aio_pika
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bench.console import BenchError, say
from shared.s3 import s3_client
from shared.settings import RabbitMQSettings, S3Settings, Settings, SettingsError, load_settings
from shared.topology import Topology, declare_topology, delete_topology

if TYPE_CHECKING:
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
CHECK_TIMEOUT = 10.0
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


class Service:
    """One platform process (API or worker) with its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name, self.argv, self.env, self.port = name, argv, env, port
        self.log = OUT / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise BenchError(f"{self.name} is not running")
        return self.process.pid

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    async def wait_ready(self) -> None:
        """Until the process accepts connections on its port (API or health server)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                code = None if self.process is None else self.process.returncode
                raise BenchError(f"{self.name} exited with {code} at start-up; see {self.log}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        raise BenchError(f"{self.name} did not listen on {self.port} within {READY_TIMEOUT} s")

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise BenchError(f"{self.name} is not running any more; see {self.log}")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            say(f"{self.name} did not stop within {STOP_TIMEOUT} s; killing it")
            process.kill()
            await asyncio.to_thread(process.wait)


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

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        from api_service.migrate import upgrade  # the API owns the schema

        OUT.mkdir(parents=True, exist_ok=True)
        url = make_url(self.database_url)
        server = create_async_engine(url.set(database=""))
        async with server.begin() as conn:
            await conn.execute(
                text(
                    f"CREATE DATABASE `{url.database}` "
                    "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )
            )

        async def drop_database() -> None:
            async with server.begin() as conn:
                await conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
            await server.dispose()

        self._on_exit("the database", drop_database)
        await asyncio.to_thread(upgrade, self.database_url)

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
        say(f"isolated: database {url.database}, bucket {self.bucket}, prefix {self.prefix}")

        api = Service(
            "api", [str(Path(sys.executable).with_name("video-api"))], self.env(), self.api_port
        )
        self._on_exit("the API", api.stop)
        api.start()
        await api.wait_ready()
        self.api = api
        self._on_exit("the worker", self.stop_worker)

    async def _delete_bucket(self) -> None:
        async with s3_client(self.s3_settings) as s3:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket):
                objects: list[ObjectIdentifierTypeDef] = [
                    {"Key": o["Key"]} for o in page.get("Contents", [])
                ]
                if objects:
                    await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})
            await s3.delete_bucket(Bucket=self.bucket)

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
                for name in names:
                    queue = await channel.get_queue(name, ensure=False)
                    result = await queue.purge()
                    dropped += result.message_count or 0
        finally:
            await connection.close()
        return dropped

    async def start_worker(self, label: str = "worker", **extra_env: str) -> Service:
        """A fresh worker process (the Python interpreter itself, no wrapper)."""
        await self.stop_worker()
        port = free_port()
        worker = Service(
            label,
            [sys.executable, "-m", "transcode_service"],
            self.env(VIDEO_WORKER__HEALTH_PORT=str(port), **extra_env),
            port,
        )
        worker.start()
        self.worker = worker
        await worker.wait_ready()
        return worker

    async def stop_worker(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            await worker.stop()
