"""The worker as a real process (``python -m transcode_service``): kill -9 mid-transcode,
SIGTERM drain, a job that crashes every worker, two workers sharing a backlog."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from harness.broker import Broker, EventListener, drain_queue, publish_job
from harness.polling import eventually, wait_until
from harness.processes import REPO_ROOT
from shared.messages import TranscodeJob, TranscodeSucceeded
from shared.settings import Settings
from shared.topology import Topology, delete_topology
from tests.media import make_video
from tests.store import Store
from tests.worker.processes import pid_alive, pids_with_arg
from tests.worker.support import uploaded_job
from tests.worker.worker_process import (
    WAIT_WITHIN,
    LogRecord,
    WorkerProcess,
    WorkerProcessFactory,
)


@pytest.fixture
def spawn(spawn_worker: WorkerProcessFactory) -> WorkerProcessFactory:
    """Worker processes with a small ladder."""
    return partial(spawn_worker, VIDEO_WORKER__RUNGS="[240, 160]")


def ladder_started(record: LogRecord) -> bool:
    return bool(record["event"] == "ffmpeg ladder started")


def finished(outcome: str) -> Callable[[LogRecord], bool]:
    return lambda r: r["event"] == "job finished" and r.get("outcome") == outcome


JobMaker = Callable[[float], Awaitable[TranscodeJob]]
MidLadder = tuple[TranscodeJob, EventListener, WorkerProcess]
LadderStarter = Callable[..., contextlib.AbstractAsyncContextManager[MidLadder]]


@pytest.fixture
def new_job(store: Store, tmp_path: Path) -> JobMaker:
    """A transcode job of a fresh clip of the given seconds, uploaded as the API would."""

    async def make(duration: float) -> TranscodeJob:
        source = make_video(tmp_path / f"{uuid.uuid4()}.mp4", duration=duration)
        return await uploaded_job(TranscodeJob, store.upload_source, source)

    return make


@pytest.fixture
def mid_ladder(broker: Broker, spawn: WorkerProcessFactory, new_job: JobMaker) -> LadderStarter:
    """``async with mid_ladder(seconds, **env) as (job, events, worker)``: a worker process
    started with ``env`` and a job of a ``seconds`` clip published to it, entered once that
    worker's ladder runs; ``events`` saw everything from before the job was published."""

    @contextlib.asynccontextmanager
    async def start(duration: float, **env: str) -> AsyncIterator[MidLadder]:
        job = await new_job(duration)
        async with broker.events() as events:
            worker = await spawn(**env)
            await broker.publish(job)
            await worker.wait_log(ladder_started)
            yield job, events, worker

    return start


async def test_kill_9_mid_transcode_is_redelivered_and_completed_once(
    mid_ladder: LadderStarter, spawn: WorkerProcessFactory, settings: Settings
) -> None:
    async with mid_ladder(8, VIDEO_WORKER__X264_PRESET="slow") as (job, events, first):
        # The real ffmpeg (inside bwrap it is not the pid the worker spawned), found by the
        # worker's own work directory in its arguments.
        workdir = str(settings.worker.work_dir / str(first.proc.pid))
        await wait_until(lambda: bool(pids_with_arg(workdir, program="ffmpeg")))
        ffmpeg = pids_with_arg(workdir, program="ffmpeg")
        await first.kill()  # SIGKILL: no clean-up at all
        # The death signal stops ffmpeg and everything between it and the worker at once
        # (no orphan keeps encoding, whatever it writes or not).
        spawned = first.child_pids()
        await wait_until(lambda: not any(pid_alive(pid) for pid in ffmpeg + spawned))
        await wait_until(lambda: not pids_with_arg(workdir))  # nor bwrap
        second = await spawn()
        done = await events.wait_for(job.job_id, ("transcode_succeeded", "transcode_failed"))
        await second.wait_log(finished("succeeded"))  # logged after the ack
        await events.caught_up()  # a duplicate would have been published before that
    assert isinstance(done, TranscodeSucceeded)
    assert len(events.of(job.job_id, "transcode_succeeded")) == 1
    assert not first.find(lambda r: r["event"] == "job finished")
    # The crashed run's work directory was removed when the next worker started.
    assert not (settings.worker.work_dir / str(first.proc.pid)).exists()


async def test_sigterm_lets_a_running_job_finish(mid_ladder: LadderStarter) -> None:
    async with mid_ladder(2, VIDEO_WORKER__SHUTDOWN_GRACE="60") as (job, events, worker):
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0
        done = await events.wait_for(job.job_id, ("transcode_succeeded",))
    assert isinstance(done, TranscodeSucceeded)
    assert worker.find(finished("succeeded"))
    assert worker.find(lambda r: r["event"] == "worker stopped")


async def test_sigterm_after_grace_requeues_the_job(
    mid_ladder: LadderStarter, spawn: WorkerProcessFactory, settings: Settings
) -> None:
    async with mid_ladder(
        8, VIDEO_WORKER__SHUTDOWN_GRACE="0.5", VIDEO_WORKER__X264_PRESET="slow"
    ) as (job, events, worker):
        worker.proc.send_signal(signal.SIGINT)
        assert await worker.wait() == 0
        assert worker.find(finished("interrupted"))
        assert not any(pid_alive(pid) for pid in worker.child_pids())  # ffmpeg stopped
        assert not (settings.worker.work_dir / str(worker.proc.pid)).exists()
        assert not events.of(job.job_id, "transcode_failed")
        # The unacked delivery went back to the queue: the next worker completes it.
        second = await spawn()
        done = await events.wait_for(job.job_id, ("transcode_succeeded", "transcode_failed"))
        await second.wait_log(finished("succeeded"))
    assert isinstance(done, TranscodeSucceeded)


async def test_two_workers_share_a_backlog(
    broker: Broker, spawn: WorkerProcessFactory, new_job: JobMaker
) -> None:
    jobs = [await new_job(3) for _ in range(4)]
    async with broker.events() as events:
        workers = [await spawn(), await spawn()]
        for job in jobs:
            await broker.publish(job)
        for job in jobs:
            done = await events.wait_for(job.job_id, ("transcode_succeeded", "transcode_failed"))
            assert isinstance(done, TranscodeSucceeded)

    def per_worker() -> list[int]:
        return [len(w.find(finished("succeeded"))) for w in workers]

    # The summary line is logged just after the ack, so it may trail the event.
    await wait_until(lambda: sum(per_worker()) == len(jobs))
    assert all(n >= 1 for n in per_worker()), per_worker()


async def test_job_that_crashes_every_worker_is_dead_lettered(
    amqp: AbstractRobustConnection,
    spawn: WorkerProcessFactory,
    new_job: JobMaker,
    settings: Settings,
) -> None:
    # An own topology with a low delivery limit, so the test needs few crashes.
    rabbitmq = settings.rabbitmq.model_copy(
        update={"prefix": f"{settings.rabbitmq.prefix}poison.", "delivery_limit": 2}
    )
    topology = Topology.from_settings(rabbitmq)
    env = {
        "VIDEO_RABBITMQ__PREFIX": rabbitmq.prefix,
        "VIDEO_RABBITMQ__DELIVERY_LIMIT": "2",
        "VIDEO_WORKER__X264_PRESET": "slow",
    }
    job = await new_job(8)
    dead: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def next_step(worker: WorkerProcess) -> str | None:
        """Whichever happened: the job was dead-lettered, or this worker started it."""
        for message in await drain_queue(amqp, topology.dead_letter_queue):
            if json.loads(message.body).get("job_id") == str(job.job_id):
                dead.append(message)
        if dead:
            return "dead-lettered"
        return "started" if worker.find(ladder_started) else None

    try:
        crashes = 0
        worker = await spawn(**env)  # declares the topology
        await publish_job(amqp, topology, job)
        while await eventually(partial(next_step, worker), interval=0.2) == "started":
            await worker.kill()  # "crashes" mid-job, every time
            crashes += 1
            assert crashes <= 4, "the broker never dead-lettered the job"
            worker = await spawn(**env)
        [message] = dead
        assert message.headers["x-death"][0]["reason"] == "delivery_limit"  # type: ignore[index,call-overload]
        assert 2 <= crashes <= 3
        assert not worker.find(ladder_started)  # the last worker never got it
    finally:
        channel = await amqp.channel()
        await delete_topology(channel, topology)
        await channel.close()


async def test_bad_setting_exits_2_with_one_line(settings_env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "transcode_service",
        env={**settings_env, "VIDEO_WORKER__COVER_CONCURRENCY": "0"},
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_WITHIN)
    assert proc.returncode == 2
    lines = stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "worker.cover_concurrency" in lines[0]
