"""Fixtures of the worker tests: handler dependencies over the real S3, sources uploaded
to this run's bucket, and helpers to read what the worker wrote."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aio_pika
import aiohttp
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client.parser import text_string_to_metric_families

from shared import keys
from shared.messages import (
    AnyEvent,
    CoverJob,
    TranscodeJob,
    parse_event,
)
from shared.s3 import s3_client
from shared.settings import Settings
from shared.topology import Topology
from transcode_service.handlers import Deps
from transcode_service.main import run
from transcode_service.metrics import Metrics

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

Uploader = Callable[[Path, int], Awaitable[str]]


@pytest.fixture(scope="session")
async def s3(settings: Settings, bucket: str) -> AsyncIterator[S3Client]:
    async with s3_client(settings.s3) as client:
        yield client


@pytest.fixture(scope="session")
def deps(settings: Settings, s3: S3Client, bucket: str) -> Deps:
    return Deps(
        settings=settings.worker,
        s3=s3,
        bucket=bucket,
        upload_semaphore=asyncio.Semaphore(settings.worker.upload_concurrency),
        metrics=Metrics(),
    )


@pytest.fixture(scope="session")
def upload_source(s3: S3Client, bucket: str) -> Uploader:
    """Put a local file under a fresh key of the video's raw/ prefix, as the API would, and
    return the key."""

    async def upload(path: Path, video_id: int) -> str:
        key = keys.raw_key(video_id, path.suffix or ".bin")
        with path.open("rb") as body:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)
        return key

    return upload


_ids = itertools.count(1)


def new_video_id() -> int:
    """Distinct video ids within the run (the bucket is per run, so no clash across runs)."""
    return next(_ids)


JobT = TypeVar("JobT", CoverJob, TranscodeJob)


async def uploaded_job(kind: type[JobT], upload_source: Uploader, source: Path) -> JobT:
    """A job of a fresh video whose upload is ``source``."""
    video_id = new_video_id()
    return kind(
        video_id=video_id, job_id=uuid.uuid4(), source_key=await upload_source(source, video_id)
    )


async def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return sorted(keys)


async def download_tree(s3: S3Client, bucket: str, prefix: str, dest: Path) -> Path:
    """Copy every object under ``prefix`` into ``dest`` (keeping the layout)."""
    for key in await list_keys(s3, bucket, prefix):
        target = dest / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        response = await s3.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            data = await body.read()
        target.write_bytes(data)
    return dest


# --------------------------------------------------------------------------- broker helpers


async def publish_job(
    amqp: AbstractRobustConnection,
    topology: Topology,
    job: CoverJob | TranscodeJob | bytes,
    *,
    routing_key: str | None = None,
    message_id: str | None = None,
) -> None:
    """Publish as the API's outbox relay does: persistent, mandatory, confirmed."""
    body = job if isinstance(job, bytes) else job.to_json()
    key = routing_key or (job.kind if not isinstance(job, bytes) else "transcode")
    channel = await amqp.channel(publisher_confirms=True, on_return_raises=True)
    try:
        exchange = await channel.get_exchange(topology.jobs_exchange)
        await exchange.publish(
            aio_pika.Message(
                body=body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id or str(uuid.uuid4()),
            ),
            routing_key=key,
            mandatory=True,
        )
    finally:
        await channel.close()


class EventListener:
    """A private queue bound to the events exchange (the run's events queue may be consumed
    by the API's tests)."""

    def __init__(self, amqp: AbstractRobustConnection, topology: Topology) -> None:
        self._amqp = amqp
        self._topology = topology
        self.events: list[AnyEvent] = []
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> EventListener:
        self._channel = await self._amqp.channel()
        queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        exchange = await self._channel.get_exchange(self._topology.events_exchange)
        await queue.bind(exchange, routing_key="event.#")
        await queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._changed:
            self.events.append(parse_event(message.body))
            self._changed.notify_all()

    def of(self, job_id: uuid.UUID, type_: str | None = None) -> list[AnyEvent]:
        return [e for e in self.events if e.job_id == job_id and (type_ is None or e.type == type_)]

    async def wait_for(
        self, job_id: uuid.UUID, types: tuple[str, ...], within: float = 60
    ) -> AnyEvent:
        """The first event of ``job_id`` whose type is one of ``types``."""

        def found() -> AnyEvent | None:
            return next((e for e in self.of(job_id) if e.type in types), None)

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event


async def drain_queue(amqp: AbstractRobustConnection, name: str) -> list[AbstractIncomingMessage]:
    """Take every message currently in ``name`` (acked)."""
    channel = await amqp.channel()
    taken: list[AbstractIncomingMessage] = []
    try:
        queue = await channel.get_queue(name)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
    finally:
        await channel.close()
    return taken


async def wait_dead_letters(
    amqp: AbstractRobustConnection,
    topology: Topology,
    predicate: Callable[[AbstractIncomingMessage], bool],
    count: int = 1,
    within: float = 30,
) -> list[AbstractIncomingMessage]:
    found: list[AbstractIncomingMessage] = []
    async with asyncio.timeout(within):
        while len(found) < count:
            found += [
                m for m in await drain_queue(amqp, topology.dead_letter_queue) if predicate(m)
            ]
            if len(found) < count:
                await asyncio.sleep(0.2)
    return found


@dataclass
class RunningWorker:
    task: asyncio.Task[int]
    stop: asyncio.Event
    port: int

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            return await response.text()

    async def settled_metrics(self) -> str:
        """/metrics once no job is in flight: a job's counters are updated just after its
        event is published and its delivery settled, so they may trail the event."""
        for _ in range(100):
            text = await self.metrics()
            if metric_value(text, "video_worker_jobs_in_flight") == 0:
                return text
            await asyncio.sleep(0.1)
        raise AssertionError("jobs still in flight")

    async def shutdown(self) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, 60)


WorkerFactory = Callable[..., Awaitable[RunningWorker]]


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


@pytest.fixture
async def start_worker(settings: Settings, bucket: str) -> AsyncIterator[WorkerFactory]:
    """Start in-process workers (``run()`` on this loop); stopped at the end of the test.
    Keyword arguments override worker settings; ``rabbitmq``/``s3`` dicts override those."""
    running: list[RunningWorker] = []

    async def start(
        rabbitmq: dict[str, Any] | None = None,
        s3: dict[str, Any] | None = None,
        **worker: Any,
    ) -> RunningWorker:
        custom = settings.model_copy(
            update={
                "worker": settings.worker.model_copy(update=worker),
                "rabbitmq": settings.rabbitmq.model_copy(update=rabbitmq or {}),
                "s3": settings.s3.model_copy(update=s3 or {}),
            }
        )
        stop = asyncio.Event()
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(run(custom, stop=stop, on_started=started.set_result))
        done, _ = await asyncio.wait({task, started}, timeout=30, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()  # raises the start-up error
        assert started in done, "worker did not start"
        handle = RunningWorker(task, stop, started.result())
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if not handle.task.done():
            await handle.shutdown()
