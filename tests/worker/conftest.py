"""Fixtures of the worker tests: handler dependencies over the real S3, sources uploaded to
this run's bucket, and workers (in-process or as subprocesses) started and stopped per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.settings import Settings
from tests.store import Store
from tests.worker.support import RunningWorker, WorkerFactory
from tests.worker.worker_process import WorkerProcess, WorkerProcessFactory
from transcode_service.handlers import Deps
from transcode_service.main import run
from transcode_service.metrics import Metrics

# Connecting to the broker and S3 and declaring the topology, on a busy machine.
START_WITHIN = 120.0


@pytest.fixture(scope="session")
def deps(settings: Settings, store: Store) -> Deps:
    return Deps(
        settings=settings.worker,
        s3=store.s3,
        bucket=store.bucket,
        upload_semaphore=asyncio.Semaphore(settings.worker.upload_concurrency),
        metrics=Metrics(),
    )


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
        done, _ = await asyncio.wait(
            {task, started}, timeout=START_WITHIN, return_when="FIRST_COMPLETED"
        )
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


@pytest.fixture
async def spawn_worker(settings_env: dict[str, str]) -> AsyncIterator[WorkerProcessFactory]:
    """Start worker processes (``python -m transcode_service``) on this run's resources, with
    JSON logs and the health server on any free port; keyword arguments are environment
    variables over those. Every one still running at the end is killed, and what it started
    with it."""
    started: list[WorkerProcess] = []

    async def spawn(**env: str) -> WorkerProcess:
        worker = await WorkerProcess.start(
            {
                **settings_env,
                "VIDEO_WORKER__HEALTH_PORT": "0",
                "VIDEO_LOGGING__JSON_OUTPUT": "true",  # WorkerProcess reads the JSON lines
                **env,
            }
        )
        started.append(worker)
        return worker

    yield spawn
    for worker in started:
        if worker.proc.returncode is None:
            await worker.kill()
        for pid in worker.child_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
