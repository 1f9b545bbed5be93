"""Worker events applied idempotently, and dead-lettered jobs failing their video."""

from __future__ import annotations

from typing import Any

import aio_pika
import aiohttp
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.polling import eventually
from shared.keys import cover_key, master_playlist_key
from shared.messages import (
    ChunkJob,
    CoverJob,
    CoverReady,
    TranscodeFailed,
    TranscodeJob,
    TranscodeProgress,
    chunk_job_id,
)
from shared.topology import HEADER_FAILURE_REASON, Topology
from tests.api.helpers import rows, succeeded, video_row
from tests.api.support import Api, User
from tests.api.videos import Videos
from tests.store import Store

IGNORED_SUCCESS = 'events_applied_total{outcome="ignored",type="transcode_succeeded"}'


async def _field(db: AsyncEngine, video_id: int, name: str) -> Any:
    video = await video_row(db, video_id)
    assert video is not None
    return video[name]


async def test_events_applied_once_each(
    api: Api, user: User, db: AsyncEngine, store: Store, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.uploaded(user)
    await store.put(cover_key(video_id), b"\xff\xd8fake-jpeg")

    job_id = await videos.issued_job(video_id, "cover")
    cover = CoverReady(
        video_id=video_id,
        job_id=job_id,
        cover_key=cover_key(video_id),
        duration=1.9,
        width=320,
        height=240,
    )
    await videos.publish(cover)
    await eventually(lambda: _field(db, video_id, "cover_key"), lambda v: v is not None)
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    body = await resp.json()
    assert body["status"] == "transcoding"
    assert body["duration"] == 1.9 and body["width"] == 320
    # The bucket is private: the cover loads only through the signed URL.
    async with http.get(body["cover_url"]) as cover_resp:
        assert cover_resp.status == 200
        assert await cover_resp.read() == b"\xff\xd8fake-jpeg"
    async with http.get(body["cover_url"].split("?")[0]) as unsigned:
        assert unsigned.status == 403

    transcode_job = await videos.issued_job(video_id, "transcode")
    for percent in (40.0, 20.0):  # progress never moves backwards
        await videos.publish(
            TranscodeProgress(video_id=video_id, job_id=transcode_job, percent=percent)
        )
    await eventually(lambda: _field(db, video_id, "progress"), lambda p: p == 40.0)

    result = succeeded(video_id, transcode_job)
    before = await api.metric(IGNORED_SUCCESS)
    # The same event twice, as a redelivery would bring it.
    await videos.publish(result)
    await videos.publish(result)
    await eventually(lambda: api.metric(IGNORED_SUCCESS), lambda v: v == before + 1)
    sources = await rows(db, "SELECT * FROM video_sources WHERE video_id = :id", id=video_id)
    assert sorted(s["quality"] for s in sources) == ["120p", "240p"]
    video = await video_row(db, video_id)
    assert video is not None
    assert video["status"] == "online" and video["progress"] == 100.0
    assert video["duration"] == 2.0 and video["master_key"] == master_playlist_key(video_id)

    # Late events change nothing: a progress, a failure, a cover again.
    await videos.publish(TranscodeProgress(video_id=video_id, job_id=transcode_job, percent=50.0))
    await videos.publish(
        TranscodeFailed(
            video_id=video_id,
            job_id=transcode_job,
            job_kind="transcode",
            reason="late",
            permanent=True,
        )
    )
    await videos.publish(cover)
    await eventually(
        lambda: api.metric('events_applied_total{outcome="ignored",type="transcode_failed"}'),
        lambda v: v >= 1,
    )
    await eventually(
        lambda: api.metric('events_applied_total{outcome="ignored",type="cover_ready"}'),
        lambda v: v >= 1,
    )
    video = await video_row(db, video_id)
    assert video is not None
    assert video["status"] == "online" and video["error"] is None
    assert video["progress"] == 100.0
    assert (
        len(await rows(db, "SELECT id FROM video_sources WHERE video_id = :id", id=video_id)) == 2
    )

    resp = await api.client.get(f"/api/v1/videos/{video_id}")  # online: public
    assert resp.status == 200
    public = await resp.json()
    assert [s["quality"] for s in public["sources"]] == ["240p", "120p"]
    assert public["sources"][0]["bandwidth"] == 240000
    assert public["playback_url"].startswith(f"{api.base_url}/api/v1/videos/{video_id}/hls/")


async def test_failed_event_marks_video_failed(
    api: Api, user: User, db: AsyncEngine, videos: Videos
) -> None:
    video_id = await videos.uploaded(user)
    await videos.fail(video_id, "not a video: no video stream")
    await eventually(lambda: _field(db, video_id, "status"), lambda s: s == "failed")
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    body = await resp.json()
    assert body["status"] == "failed"
    assert body["error"] == "transcode: not a video: no video stream"
    # A success arriving after the failure does not resurrect the video.
    await videos.publish(succeeded(video_id))
    await eventually(lambda: api.metric(IGNORED_SUCCESS), lambda v: v >= 1)
    assert await _field(db, video_id, "status") == "failed"
    assert await rows(db, "SELECT id FROM video_sources WHERE video_id = :id", id=video_id) == []


async def test_malformed_event_is_dead_lettered(
    api: Api, amqp: AbstractRobustConnection, declared_topology: Topology
) -> None:
    before = await api.metric('dead_letters_seen_total{kind="other"}')
    channel = await amqp.channel()
    exchange = await channel.get_exchange(declared_topology.events_exchange)
    await exchange.publish(aio_pika.Message(b'{"schema_version": 99}'), "event.bogus")
    await channel.close()
    # The API rejected it without requeue; the watch copy of the dead letter comes back.
    await eventually(
        lambda: api.metric('dead_letters_seen_total{kind="other"}'),
        lambda v: v == before + 1,
    )
    resp = await api.client.get("/healthz")
    assert resp.status == 200


async def test_dead_lettered_job_fails_video(
    user: User,
    db: AsyncEngine,
    videos: Videos,
    amqp: AbstractRobustConnection,
    declared_topology: Topology,
) -> None:
    channel = await amqp.channel()
    dlx = await channel.get_exchange(declared_topology.dead_letter_exchange)

    async def error_after_dead_letter(job: CoverJob | ChunkJob, reason: str) -> str:
        await dlx.publish(
            aio_pika.Message(job.to_json(), headers={HEADER_FAILURE_REASON: reason}),
            routing_key="",
        )
        await eventually(lambda: _field(db, job.video_id, "status"), lambda s: s == "failed")
        return str(await _field(db, job.video_id, "error"))

    with_reason = await videos.uploaded(user)
    job = CoverJob(
        video_id=with_reason,
        job_id=await videos.issued_job(with_reason, "cover"),
        source_key="raw/x/y.mp4",
    )
    assert await error_after_dead_letter(job, "S3 kept timing out") == "cover: S3 kept timing out"

    # A chunk of a long video's transcode: the API knows only the job it issued, the
    # chunk's parent.
    chunked = await videos.uploaded(user)
    parent = await videos.issued_job(chunked, "transcode")
    chunk = ChunkJob(
        video_id=chunked, job_id=chunk_job_id(parent, 1), source_key="raw/x/y.mp4",
        parent_job_id=parent, index=1, count=3, start=60.0, duration=60.0,
        total_duration=180.0, segment_seconds=6, first_segment=10, rungs=[360], source_size=1,
    )  # fmt: skip
    assert await error_after_dead_letter(chunk, "gave up") == "transcode_chunk: gave up"

    # The broker's own delivery limit: a job that keeps coming back (a crashing worker)
    # is dead-lettered by RabbitMQ, and the API fails its video.
    crashing = await videos.uploaded(user)
    queue = await channel.declare_queue(declared_topology.transcode_queue, passive=True)
    await queue.purge()
    poison = TranscodeJob(
        video_id=crashing,
        job_id=await videos.issued_job(crashing, "transcode"),
        source_key="raw/x/y.mp4",
    )
    jobs = await channel.get_exchange(declared_topology.jobs_exchange)
    await jobs.publish(aio_pika.Message(poison.to_json()), routing_key="transcode")

    async def bounce() -> str:
        message = await queue.get(fail=False)
        if message is not None:
            await message.nack(requeue=True)
        return str(await _field(db, crashing, "status"))

    await eventually(bounce, lambda s: s == "failed")
    await channel.close()
    error = await _field(db, crashing, "error")
    assert error == (
        "transcode: the job was dead-lettered after repeatedly failing or crashing workers"
    )
