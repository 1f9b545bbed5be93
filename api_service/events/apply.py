"""How each worker event changes the database, apart from any transport.

Every change is a guarded statement (``... WHERE status = 'transcoding'``) or an upsert on a
unique key, so an event delivered twice, late or out of order changes nothing twice. The
functions run inside the caller's transaction; the consumer (``events.consumer``) owns
acking and retrying.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import func, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.db.models import VIDEO_ERROR_MAX, Video, VideoSource
from shared.keys import processed_prefix
from shared.messages import AnyEvent, CoverReady, TranscodeProgress, TranscodeSucceeded
from shared.status import VideoStatus

log = structlog.get_logger(__name__)


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _own_key(video_id: int, key: str) -> bool:
    return key.startswith(processed_prefix(video_id)) and ".." not in key.split("/")


async def apply_event(session: AsyncSession, event: AnyEvent) -> bool:
    """Apply one event inside the caller's transaction; True if the video row changed."""
    if isinstance(event, CoverReady):
        return await apply_cover_ready(session, event)
    if isinstance(event, TranscodeProgress):
        return await apply_progress(session, event)
    if isinstance(event, TranscodeSucceeded):
        return await apply_succeeded(session, event)
    return await mark_failed(session, event.video_id, f"{event.job_kind}: {event.reason}")


async def apply_cover_ready(session: AsyncSession, event: CoverReady) -> bool:
    if not _own_key(event.video_id, event.cover_key):
        log.warning("cover key outside the video's prefix", cover_key=event.cover_key)
        return False
    values: dict[str, Any] = {"cover_key": event.cover_key}
    # The transcode result is authoritative; the probe data of the cover only fills gaps.
    if event.duration is not None:
        values["duration"] = func.coalesce(Video.duration, event.duration)
    if event.width is not None:
        values["width"] = func.coalesce(Video.width, event.width)
    if event.height is not None:
        values["height"] = func.coalesce(Video.height, event.height)
    result = await session.execute(
        update(Video)
        .where(
            Video.id == event.video_id,
            Video.status.in_([VideoStatus.TRANSCODING, VideoStatus.ONLINE]),
            (Video.cover_key.is_(None)) | (Video.cover_key != event.cover_key),
        )
        .values(**values)
    )
    return _rowcount(result) > 0


async def apply_progress(session: AsyncSession, event: TranscodeProgress) -> bool:
    result = await session.execute(
        update(Video)
        .where(
            Video.id == event.video_id,
            Video.status == VideoStatus.TRANSCODING,
            Video.progress < event.percent,
        )
        .values(progress=event.percent)
    )
    return _rowcount(result) > 0


async def apply_succeeded(session: AsyncSession, event: TranscodeSucceeded) -> bool:
    video_id = event.video_id
    keys = [event.master_key, *(r.playlist_key for r in event.renditions)]
    if not all(_own_key(video_id, key) for key in keys):
        log.warning("transcode result names keys outside the video's prefix")
        return False
    result = await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status == VideoStatus.TRANSCODING)
        .values(
            status=VideoStatus.ONLINE,
            progress=100.0,
            master_key=event.master_key,
            duration=event.duration,
            width=event.width,
            height=event.height,
            error=None,
        )
    )
    if _rowcount(result) == 0:
        return False
    insert = mysql_insert(VideoSource).values(
        [
            {
                "video_id": video_id,
                "quality": r.quality,
                "format": r.format,
                "playlist_key": r.playlist_key,
                "width": r.width,
                "height": r.height,
                "bandwidth": r.bandwidth,
            }
            for r in event.renditions
        ]
    )
    await session.execute(
        insert.on_duplicate_key_update(
            playlist_key=insert.inserted.playlist_key,
            width=insert.inserted.width,
            height=insert.inserted.height,
            bandwidth=insert.inserted.bandwidth,
        )
    )
    return True


async def mark_failed(session: AsyncSession, video_id: int, reason: str) -> bool:
    """A transcoding video becomes failed with ``reason`` (a failed event or a dead letter)."""
    result = await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status == VideoStatus.TRANSCODING)
        .values(status=VideoStatus.FAILED, error=reason[:VIDEO_ERROR_MAX])
    )
    return _rowcount(result) > 0
