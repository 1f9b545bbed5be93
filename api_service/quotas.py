"""Per-user quotas read from the videos table: uploads in flight, bytes stored, transcodes
in flight. The checks run inside the transaction that changes the user's videos, after
locking the user's row, so two replicas racing for the last slot cannot both take it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.db.models import Video, utcnow
from api_service.http.errors import ApiError
from shared.settings import Settings
from shared.status import VideoStatus

# When a transcode slot frees up is unknowable; a client polling this often is cheap.
TRANSCODE_RETRY_AFTER = 30


class QuotaExceeded(ApiError):
    def __init__(self, status: int, message: str, quota: str, retry_after: int | None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        super().__init__(
            status,
            "quota_exceeded",
            message,
            headers=headers,
            details=[{"quota": quota, **({"retry_after": retry_after} if retry_after else {})}],
        )


async def lock_user(session: AsyncSession, user_id: int) -> None:
    """Serialises quota checks of one user across replicas until the transaction ends."""
    await session.execute(text("SELECT id FROM users WHERE id = :id FOR UPDATE"), {"id": user_id})


async def bytes_stored(session: AsyncSession, user_id: int, exclude_video: int | None) -> int:
    query = select(func.coalesce(func.sum(Video.size), 0)).where(
        Video.owner_id == user_id, Video.status != VideoStatus.FAILED
    )
    if exclude_video is not None:
        query = query.where(Video.id != exclude_video)
    return int(await session.scalar(query) or 0)


def _over_bytes(settings: Settings, used: int, adding: int) -> QuotaExceeded:
    quota = settings.limits.bytes_per_user
    return QuotaExceeded(
        413,
        f"storage quota exceeded: {used} bytes stored + {adding} bytes is over the "
        f"{quota} bytes allowed per user; delete videos to make room",
        "bytes_per_user",
        None,
    )


async def check_initiate(
    session: AsyncSession, settings: Settings, user_id: int, size: int | None
) -> None:
    """Uploads in flight (whose URL is still valid) and bytes stored, size announced or not."""
    limits = settings.limits
    url_lifetime = timedelta(seconds=settings.s3.upload_url_expiry)
    since = utcnow() - url_lifetime
    in_flight = list(
        await session.scalars(
            select(Video.created_at)
            .where(
                Video.owner_id == user_id,
                Video.status == VideoStatus.UPLOADING,
                Video.created_at > since,
            )
            .order_by(Video.created_at)
        )
    )
    if len(in_flight) >= limits.uploads_in_flight:
        # A slot frees when the oldest upload URL expires (or that upload is completed).
        retry_after = max(1, int((in_flight[0] + url_lifetime - utcnow()).total_seconds()) + 1)
        raise QuotaExceeded(
            429,
            f"too many uploads in flight: at most {limits.uploads_in_flight}; complete or "
            "delete one first",
            "uploads_in_flight",
            retry_after,
        )
    used = await bytes_stored(session, user_id, None)
    if used + (size or 0) > limits.bytes_per_user or used >= limits.bytes_per_user:
        raise _over_bytes(settings, used, size or 0)


async def check_complete(
    session: AsyncSession, settings: Settings, user_id: int, video_id: int, size: int
) -> None:
    """Bytes stored with this upload, then a free transcode slot for the user."""
    used = await bytes_stored(session, user_id, video_id)
    if used + size > settings.limits.bytes_per_user:
        raise _over_bytes(settings, used, size)
    await check_transcode_slot(session, settings, user_id)


async def check_transcode_slot(session: AsyncSession, settings: Settings, user_id: int) -> None:
    limit = settings.limits.transcodes_in_flight
    running = await session.scalar(
        select(func.count())
        .select_from(Video)
        .where(Video.owner_id == user_id, Video.status == VideoStatus.TRANSCODING)
    )
    if (running or 0) >= limit:
        raise QuotaExceeded(
            429,
            f"too many videos transcoding: at most {limit} per user at once; "
            "retry when one is done",
            "transcodes_in_flight",
            TRANSCODE_RETRY_AFTER,
        )
