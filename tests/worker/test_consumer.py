"""The worker in-process (``run()`` on the test loop) against the real RabbitMQ, S3 and
ffmpeg: consumption, events, failures, dead letters, health and metrics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import aiohttp
import pytest
import structlog

from harness.broker import Broker
from harness.metrics import metric_value
from shared import keys
from shared.messages import (
    CoverJob,
    CoverReady,
    TranscodeFailed,
    TranscodeJob,
    TranscodeProgress,
    TranscodeSucceeded,
)
from shared.topology import HEADER_FAILURE_REASON
from tests.media import make_video
from tests.store import Store
from tests.worker.bad_inputs import BAD_INPUTS
from tests.worker.support import WorkerFactory, new_video_id, uploaded_job


async def test_cover_and_transcode_jobs_end_in_events(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    worker = await start_worker(rungs=[240, 160], progress_interval=0.2)
    video_id = new_video_id()
    key = await store.upload_source(make_video(tmp_path / "in.mp4", duration=4), video_id)
    cover = CoverJob(video_id=video_id, job_id=uuid.uuid4(), source_key=key)
    transcode = TranscodeJob(video_id=video_id, job_id=uuid.uuid4(), source_key=key)
    async with broker.events() as events:
        await broker.publish(transcode)
        await broker.publish(cover)
        ready = await events.wait_for(cover.job_id, ("cover_ready", "transcode_failed"))
        done = await events.wait_for(transcode.job_id, ("transcode_succeeded", "transcode_failed"))
    assert isinstance(ready, CoverReady) and ready.cover_key == keys.cover_key(video_id)
    assert isinstance(done, TranscodeSucceeded)
    assert [r.quality for r in done.renditions] == ["240p", "160p"]
    progress = events.of(transcode.job_id, "progress")
    assert progress and all(isinstance(p, TranscodeProgress) for p in progress)

    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/readyz"):
            async with session.get(f"http://127.0.0.1:{worker.port}{path}") as response:
                assert response.status == 200, path
    text = await worker.settled_metrics()
    assert metric_value(text, "video_worker_jobs_total", kind="cover", outcome="succeeded") == 1
    assert metric_value(text, "video_worker_jobs_total", kind="transcode", outcome="succeeded") == 1
    assert metric_value(text, "video_worker_ffmpeg_speed_ratio_count", kind="transcode") == 1
    assert metric_value(text, "video_worker_jobs_in_flight") == 0
    assert await worker.shutdown() == 0


async def test_bad_inputs_fail_once_with_reason(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    worker = await start_worker()
    jobs: dict[str, TranscodeJob] = {}
    async with broker.events() as events:
        for name, (make, _) in BAD_INPUTS.items():
            (tmp_path / name).mkdir()
            source = make(tmp_path / name)
            jobs[name] = await uploaded_job(TranscodeJob, store.upload_source, source)
            await broker.publish(jobs[name])
        for name, job in jobs.items():
            event = await events.wait_for(job.job_id, ("transcode_failed", "transcode_succeeded"))
            assert isinstance(event, TranscodeFailed), name
            assert event.permanent and event.job_kind == "transcode"
            assert BAD_INPUTS[name][1] in event.reason
    text = await worker.settled_metrics()
    assert metric_value(text, "video_worker_retries_total") == 0
    assert metric_value(text, "video_worker_jobs_total", outcome="failed") == len(BAD_INPUTS)
    # Exactly one outcome event each (progress aside): no retry loop.
    for job in jobs.values():
        assert [e.type for e in events.of(job.job_id) if e.type != "progress"] == [
            "transcode_failed"
        ]


async def test_job_for_another_videos_upload_is_rejected(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    # Whoever can publish a job must not get video A's upload encoded into video B's outputs.
    worker = await start_worker(rungs=[160])
    victim = await uploaded_job(TranscodeJob, store.upload_source, make_video(tmp_path / "a.mp4"))
    # An id no other test of the run writes outputs for (the API's videos count from 1).
    other = 1_000_000_000 + new_video_id()
    jobs: list[CoverJob | TranscodeJob] = [
        TranscodeJob(video_id=other, job_id=uuid.uuid4(), source_key=victim.source_key),
        CoverJob(video_id=other, job_id=uuid.uuid4(), source_key=victim.source_key),
    ]
    async with broker.events() as events:
        for job in jobs:
            await broker.publish(job)
        for job in jobs:
            event = await events.wait_for(
                job.job_id, ("transcode_failed", "transcode_succeeded", "cover_ready")
            )
            assert isinstance(event, TranscodeFailed)
            assert event.permanent and event.job_kind == job.kind
            assert f"not an upload of video {other}" in event.reason
    assert await store.keys(keys.processed_prefix(other)) == []
    text = await worker.settled_metrics()
    assert metric_value(text, "video_worker_retries_total") == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"schema_version": 99, "kind": "transcode"}).encode(), "schema_version"),
        (
            json.dumps(
                {"schema_version": 1, "kind": "transcode", "video_id": -1, "job_id": "x"}
            ).encode(),
            "invalid message",
        ),
    ],
)
async def test_malformed_message_goes_to_dead_letter_queue(
    broker: Broker,
    start_worker: WorkerFactory,
    body: bytes,
    reason: str,
) -> None:
    worker = await start_worker()
    message_id = str(uuid.uuid4())
    with structlog.testing.capture_logs() as logs:
        await broker.publish(body, message_id=message_id)
        [dead] = await broker.dead_letters(lambda m: m.message_id == message_id)
    assert dead.body == body
    death = dead.headers["x-death"][0]  # type: ignore[index]
    assert death["reason"] == "rejected"  # type: ignore[index,call-overload]
    text = await worker.settled_metrics()
    assert metric_value(text, "video_worker_jobs_total", outcome="malformed") == 1
    [logged] = [e for e in logs if e["event"] == "malformed message dead-lettered"]
    assert reason in logged["reason"]


async def test_transient_failures_retried_then_dead_lettered(
    broker: Broker,
    start_worker: WorkerFactory,
) -> None:
    # Storage unreachable: every attempt fails with a connection error.
    worker = await start_worker(max_attempts=3, s3={"endpoint_url": "http://127.0.0.1:9"})
    video_id = new_video_id()
    job = CoverJob(
        video_id=video_id, job_id=uuid.uuid4(), source_key=keys.raw_key(video_id, ".mp4")
    )
    async with broker.events() as events:
        await broker.publish(job)
        event = await events.wait_for(job.job_id, ("transcode_failed", "cover_ready"))
    assert isinstance(event, TranscodeFailed)
    assert not event.permanent and event.job_kind == "cover"
    assert "gave up after 3 attempts" in event.reason
    [dead] = await broker.dead_letters(
        lambda m: json.loads(m.body).get("job_id") == str(job.job_id)
    )
    assert "gave up after 3 attempts" in str(dead.headers[HEADER_FAILURE_REASON])
    text = await worker.settled_metrics()
    assert metric_value(text, "video_worker_retries_total", kind="cover") == 2
    assert metric_value(text, "video_worker_jobs_total", outcome="dead_lettered") == 1
