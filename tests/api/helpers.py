"""Helpers of the API tests: the upload flow as a client runs it (the harness's client on the
app under test) and reading rows the API wrote."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.client import curl_put
from harness.polling import eventually
from shared.keys import master_playlist_key, rendition_playlist_key
from shared.messages import Rendition, TranscodeSucceeded
from tests.api.support import Api, User

UPLOAD_WITHIN = 120.0


async def initiate(
    api: Api, user: User, file_name: str = "clip.mp4", **extra: Any
) -> dict[str, Any]:
    return await api.as_user(user).initiate(file_name, **extra)


async def upload(path: Path, url: str) -> None:
    await curl_put(path, url, within=UPLOAD_WITHIN)


async def complete(api: Api, user: User, video_id: int) -> tuple[int, dict[str, Any]]:
    """Status and body of complete, whatever the status (the tests check the 4xx ones)."""
    status, body = await api.as_user(user).request(
        "POST", "/api/v1/videos/upload/complete", json={"video_id": video_id}
    )
    return status, body


async def uploaded_video(api: Api, user: User, path: Path, **initiate_fields: Any) -> int:
    """A video in status transcoding: initiated, uploaded with curl and completed."""
    init = await initiate(api, user, path.name, **initiate_fields)
    await upload(path, init["upload_url"])
    status, body = await complete(api, user, init["video_id"])
    assert status == 202, body
    video_id: int = init["video_id"]
    return video_id


async def row(db: AsyncEngine, sql: str, **params: Any) -> dict[str, Any] | None:
    async with db.connect() as conn:
        result = (await conn.execute(text(sql), params)).mappings().first()
    return dict(result) if result is not None else None


async def rows(db: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        result = (await conn.execute(text(sql), params)).mappings().all()
    return [dict(r) for r in result]


async def video_row(db: AsyncEngine, video_id: int) -> dict[str, Any] | None:
    return await row(db, "SELECT * FROM videos WHERE id = :id", id=video_id)


def succeeded(
    video_id: int,
    job_id: uuid.UUID | None = None,
    *,
    heights: tuple[int, ...] = (240, 120),
    master_key: str | None = None,
    renditions: list[Rendition] | None = None,
    duration: float = 2.0,
    source_size: int = 1234,
) -> TranscodeSucceeded:
    """The worker's success event for a 320x240 source; by default one rendition per
    height at the keys the worker writes."""
    return TranscodeSucceeded(
        video_id=video_id,
        job_id=job_id or uuid.uuid4(),
        master_key=master_key or master_playlist_key(video_id),
        renditions=renditions
        or [
            Rendition(
                quality=f"{h}p",
                width=h * 4 // 3,
                height=h,
                bandwidth=h * 1000,
                playlist_key=rendition_playlist_key(video_id, h),
            )
            for h in heights
        ],
        duration=duration,
        width=320,
        height=240,
        source_size=source_size,
    )


def file_size(path: Path) -> int:
    return path.stat().st_size


async def issued_job(db: AsyncEngine, video_id: int, kind: str) -> uuid.UUID:
    """The id of the ``kind`` job the API issued (and published) for the video: the API
    applies only events of jobs it issued for that video."""

    async def sent() -> dict[str, Any] | None:
        return await row(
            db,
            "SELECT message_id FROM outbox WHERE video_id = :v AND routing_key = :k "
            "AND sent_at IS NOT NULL",
            v=video_id,
            k=kind,
        )

    found = await eventually(sent, lambda r: r is not None)
    assert found is not None
    return uuid.UUID(found["message_id"])
