"""Long jobs: RabbitMQ closes a channel whose delivery stays unacked past consumer_timeout
and redelivers the message. The lease (an exclusive queue per running job) and the result
marker keep the job from being processed twice. The broker's timeout is lowered for the
test (read when a channel opens) and restored afterwards."""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from harness.broker import Broker
from harness.metrics import metric_value
from harness.polling import eventually
from shared.messages import TranscodeJob, TranscodeSucceeded
from shared.settings import Settings
from tests.media import make_video
from tests.store import Store
from tests.worker.support import WorkerFactory, uploaded_job
from transcode_service.lease import LeaseManager

# The broker notices the timed-out delivery on a channel tick and the copy goes round a
# retry queue; all of it slows down on a busy machine.
REDELIVERY_WITHIN = 120.0


def _rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", *args], check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout


def _rabbit_env(key: str, value: str | None = None) -> str:
    expr = (
        f"application:set_env(rabbit, {key}, {value})."
        if value is not None
        else f"application:get_env(rabbit, {key})."
    )
    result = subprocess.run(
        ["rabbitmqctl", "eval", expr], check=True, capture_output=True, text=True, timeout=60
    )
    return result.stdout.strip()


# The broker-wide settings this test lowers, with the values it sets and RabbitMQ's defaults.
SHORT_TIMEOUTS = {
    "consumer_timeout": ("2000", "1800000"),
    "channel_tick_interval": ("500", "60000"),
}
# RabbitMQ 3.10 has no per-queue consumer timeout, so the test changes the broker's. Suites
# running at the same time on one broker take turns through this lock, so that one never
# saves another's lowered value as "the value before" and leaves it behind.
BROKER_SETTINGS_LOCK = Path(tempfile.gettempdir()) / "video-platform-rabbit-timeouts.lock"


@pytest.fixture
def short_consumer_timeout() -> Iterator[None]:
    with BROKER_SETTINGS_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        before = {key: _rabbit_env(key) for key in SHORT_TIMEOUTS}
        try:
            for key, (short, _) in SHORT_TIMEOUTS.items():
                # The timeout is checked on the channel's tick (60 s by default).
                _rabbit_env(key, short)
            yield
        finally:
            for key, (short, default) in SHORT_TIMEOUTS.items():
                old = before[key]
                value = old[len("{ok,") : -1] if old.startswith("{ok,") else default
                # A short value seen before we set ours was left by a run without this lock.
                _rabbit_env(key, default if value == short else value)


async def test_long_job_is_not_processed_twice_after_consumer_timeout(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
    short_consumer_timeout: None,
) -> None:
    source = make_video(tmp_path / "in.mp4", width=854, height=480, duration=8)
    job = await uploaded_job(TranscodeJob, store.upload_source, source)
    # Two workers (two connections): the redelivered copy may reach the one holding the
    # lease (same connection: in-process check) or the other (RESOURCE_LOCKED). A slow preset
    # on one thread keeps the ladder running well past the 2 s timeout even on an idle
    # machine (veryfast finished this clip in under 2 s, before the broker looked).
    workers = [
        await start_worker(rungs=[480, 360, 240], x264_preset="slow", ffmpeg_threads=1)
        for _ in range(2)
    ]
    async with broker.events() as events:
        await broker.publish(job)
        done = await events.wait_for(
            job.job_id, ("transcode_succeeded", "transcode_failed"), within=300
        )
        assert isinstance(done, TranscodeSucceeded)

        async def total(name: str, **labels: str) -> float:
            texts = [await w.metrics() for w in workers]
            return sum(metric_value(t, name, **labels) for t in texts)

        # The redelivered copy comes back round the delay queue and finds the result marker.
        await eventually(
            lambda: total("video_worker_jobs_total", outcome="duplicate"),
            lambda duplicates: duplicates >= 1,
            within=REDELIVERY_WITHIN,
            interval=0.2,
        )
        assert len(events.of(job.job_id, "transcode_succeeded")) == 1
    # The broker really did time the delivery out and redeliver it while ffmpeg ran...
    assert await total("video_worker_jobs_total", outcome="deferred") >= 1
    # ...and the ladder still ran exactly once.
    assert await total("video_worker_ffmpeg_ladder_runs_total") == 1
    for worker in workers:
        assert await worker.shutdown() == 0


async def test_lease_is_exclusive_and_refusals_leak_no_channels(settings: Settings) -> None:
    url = settings.rabbitmq.url.get_secret_value()
    name_b = f"lease-test-{uuid.uuid4()}"
    a = await aio_pika.connect_robust(url)
    b = await aio_pika.connect_robust(url, client_properties={"connection_name": name_b})
    try:
        holder = LeaseManager(a, settings.rabbitmq.prefix)
        other = LeaseManager(b, settings.rabbitmq.prefix)
        assert await holder.acquire("transcode", "job-1")
        assert not await holder.acquire("transcode", "job-1")  # same process: in-memory
        for _ in range(5):
            assert not await other.acquire("transcode", "job-1")
        assert await other.acquire("transcode", "job-2")  # other jobs are independent
        await other.release("transcode", "job-2")

        def channels_of_b() -> str:
            listing = _rabbitmqctl("list_connections", "client_properties", "channels", "-q")
            [line] = [row for row in listing.splitlines() if name_b in row]
            return line.split()[-1]

        # Every refused attempt's channel is closed (none left open, none reopened).
        await eventually(lambda: asyncio.to_thread(channels_of_b), lambda n: n == "0")
        await holder.release("transcode", "job-1")
        assert await other.acquire("transcode", "job-1")
        await other.release("transcode", "job-1")
    finally:
        await a.close()
        await b.close()


async def test_a_crash_releases_the_lease(settings: Settings) -> None:
    url = settings.rabbitmq.url.get_secret_value()
    a = await aio_pika.connect_robust(url)
    b = await aio_pika.connect_robust(url)
    try:
        assert await LeaseManager(a, settings.rabbitmq.prefix).acquire("cover", "job-3")
        other = LeaseManager(b, settings.rabbitmq.prefix)
        assert not await other.acquire("cover", "job-3")
        await a.close()  # the process holding it is gone
        assert await other.acquire("cover", "job-3")
        await other.release("cover", "job-3")
    finally:
        await b.close()
