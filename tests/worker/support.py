"""Helpers of the worker tests: fresh video ids, sources and outputs in the run's bucket, and
a handle on an in-process worker (its health port, its metrics, its shutdown)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiohttp

from harness.metrics import metric_value
from harness.polling import eventually
from shared.messages import CoverJob, TranscodeJob

if TYPE_CHECKING:
    pass

# Puts a local file under a fresh key of the video's raw/ prefix in the run's bucket and
# returns the key.
Uploader = Callable[[Path, int], Awaitable[str]]

# A generous bound for a worker to stop (it finishes or requeues what it holds first).
SHUTDOWN_WITHIN = 120.0

# Far above the database ids the API and end-to-end tests create in the same bucket.
_ids = itertools.count(10_000_001)


def new_video_id() -> int:
    """Distinct video ids within the run (the bucket is per run, so no clash across runs),
    none of them a video the API tests created."""
    return next(_ids)


JobT = TypeVar("JobT", CoverJob, TranscodeJob)


async def uploaded_job(kind: type[JobT], upload_source: Uploader, source: Path) -> JobT:
    """A job of a fresh video whose upload is ``source``."""
    video_id = new_video_id()
    return kind(
        video_id=video_id, job_id=uuid.uuid4(), source_key=await upload_source(source, video_id)
    )


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
        return await eventually(
            self.metrics, lambda text: metric_value(text, "video_worker_jobs_in_flight") == 0
        )

    async def shutdown(self) -> int:
        self.stop.set()
        return await asyncio.wait_for(self.task, SHUTDOWN_WITHIN)


WorkerFactory = Callable[..., Awaitable[RunningWorker]]
