"""Finishing an upload: the size the store reports is checked against the limit (an oversize
object is deleted and the video fails with a 413), then, in one transaction, the video moves
to `transcoding` and its cover and transcode jobs go into the outbox."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult

from api_service.context import OUTBOX_WAKE, SESSIONS, SETTINGS, STORAGE, TOPOLOGY
from api_service.db.models import ETAG_MAX, OutboxMessage, Video
from api_service.http.errors import ApiError
from api_service.quotas import check_complete, lock_user
from api_service.webhooks import outbox as webhook_outbox
from api_service.webhooks.outbox import VIDEO_PROCESSING
from shared.messages import CoverJob, TranscodeJob
from shared.settings import Settings
from shared.status import VideoStatus

log = structlog.get_logger(__name__)


def upload_limit(settings: Settings, video: Video) -> int:
    """What this video's object may weigh: the configured maximum, or less if declared."""
    limit = settings.upload.max_size
    return min(limit, video.declared_size) if video.declared_size is not None else limit


async def fail_upload(app: web.Application, video: Video, reason: str, size: int | None) -> None:
    """Delete what was uploaded and mark the (still uploading) video failed."""
    if video.source_key is not None:
        await app[STORAGE].delete(video.source_key)
    async with app[SESSIONS]() as session, session.begin():
        await session.execute(
            update(Video)
            .where(Video.id == video.id, Video.status == VideoStatus.UPLOADING)
            .values(status=VideoStatus.FAILED, error=reason, size=size, upload_id=None)
        )
    log.info("upload rejected", video_id=video.id, reason=reason)


async def reject_too_large(app: web.Application, video: Video, size: int) -> ApiError:
    limit = upload_limit(app[SETTINGS], video)
    reason = f"upload is {size} bytes, over the maximum of {limit} bytes"
    await fail_upload(app, video, reason, size)
    return ApiError(413, "file_too_large", reason)


async def enqueue_processing(app: web.Application, video: Video, size: int, etag: str) -> None:
    """uploading → transcoding plus both jobs, atomically; 409 if the video moved on."""
    assert video.source_key is not None
    topology = app[TOPOLOGY]
    jobs: list[CoverJob | TranscodeJob] = [
        kind(
            video_id=video.id,
            job_id=uuid.uuid4(),
            source_key=video.source_key,
            source_etag=etag[:128] or None,
        )
        for kind in (CoverJob, TranscodeJob)
    ]
    sessions = app[SESSIONS]
    async with sessions() as session, session.begin():
        # Quotas under the user's row lock: racing completes on any replica queue up here.
        await lock_user(session, video.owner_id)
        await check_complete(session, app[SETTINGS], video.owner_id, video.id, size)
        # Guarded: of two racing completes exactly one matches the uploading row.
        result = await session.execute(
            update(Video)
            .where(Video.id == video.id, Video.status == VideoStatus.UPLOADING)
            .values(
                status=VideoStatus.TRANSCODING,
                size=size,
                etag=etag[:ETAG_MAX],
                progress=0.0,
                error=None,
                upload_id=None,
            )
        )
        assert isinstance(result, CursorResult)
        won = result.rowcount == 1
        if won:
            await webhook_outbox.enqueue(
                session, video.id, VIDEO_PROCESSING, {"status": "transcoding", "size": size}
            )
            session.add_all(
                OutboxMessage(
                    message_id=str(job.job_id),
                    video_id=video.id,
                    exchange=topology.jobs_exchange,
                    routing_key=job.kind,  # the jobs exchange binds each queue by kind
                    body=job.to_json().decode(),
                )
                for job in jobs
            )
    if not won:
        async with sessions() as session:
            current = await session.scalar(select(Video.status).where(Video.id == video.id))
        state = current.value if current else "deleted"
        raise ApiError(409, "invalid_status", f"video is {state}, not uploading")
    app[OUTBOX_WAKE].set()
    log.info("upload completed", video_id=video.id, size=size, jobs=[str(j.job_id) for j in jobs])
