"""Starting an upload: validate what the client declares, create the `uploading` row with a
key of our choosing, and hand out either a single presigned PUT/POST or an S3 multipart
upload whose parts are signed on demand."""

from __future__ import annotations

import posixpath
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web
from sqlalchemy import delete, update

from api_service.context import SESSIONS, SETTINGS, STORAGE
from api_service.db.models import FILE_NAME_MAX, Video
from api_service.http.errors import ApiError
from api_service.http.schemas import (
    InitiateUploadRequest,
    InitiateUploadResponse,
    MultipartUploadInfo,
    PresignedPostResponse,
)
from api_service.quotas import check_initiate, lock_user
from api_service.uploads.parts import suggested_part_size
from shared.keys import raw_key
from shared.settings import S3_MAX_PART, Settings
from shared.status import VideoStatus

log = structlog.get_logger(__name__)


def _extension(file_name: str) -> str:
    # Both separators: a Windows client may send a full path.
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    return posixpath.splitext(base)[1].lower()


def validate_upload_request(settings: Settings, body: InitiateUploadRequest) -> str:
    """Check type and declared size; returns the normalised extension for the key."""
    upload = settings.upload
    ext = _extension(body.file_name)
    allowed_ext = {e.lower() for e in upload.allowed_extensions}
    if ext not in allowed_ext:
        raise ApiError(
            400,
            "unsupported_file_type",
            f"invalid file_name: extension {ext or '(none)'!r} is not an accepted video type "
            f"({', '.join(sorted(allowed_ext))})",
        )
    if body.content_type is not None:
        content_type = body.content_type.split(";", 1)[0].strip().lower()
        if content_type not in {c.lower() for c in upload.allowed_content_types}:
            raise ApiError(
                400,
                "unsupported_file_type",
                f"invalid content_type: {content_type!r} is not an accepted video type",
            )
    if body.size is not None and body.size > upload.max_size:
        raise ApiError(
            413,
            "file_too_large",
            f"invalid size: {body.size} bytes is over the maximum of {upload.max_size} bytes",
        )
    if body.multipart is False and body.size is not None and body.size > S3_MAX_PART:
        raise ApiError(
            413,
            "file_too_large",
            f"invalid size: a single upload is at most {S3_MAX_PART} bytes; use a multipart upload",
        )
    return ext


def wants_multipart(settings: Settings, body: InitiateUploadRequest) -> bool:
    if body.multipart is not None:
        return body.multipart
    return body.size is not None and body.size > settings.upload.multipart_threshold


def single_upload_limit(settings: Settings, declared: int | None) -> int:
    """The largest object a single upload of this video may write."""
    limit = min(settings.upload.max_size, S3_MAX_PART)
    return min(limit, declared) if declared is not None else limit


async def start_upload(
    app: web.Application, user_id: int, body: InitiateUploadRequest, ext: str, *, multipart: bool
) -> InitiateUploadResponse:
    settings, storage, sessions = app[SETTINGS], app[STORAGE], app[SESSIONS]
    file_name = (
        body.file_name.replace("\\", "/").rsplit("/", 1)[-1][:FILE_NAME_MAX] or body.file_name
    )
    title = body.title or posixpath.splitext(file_name)[0] or file_name
    async with sessions() as session, session.begin():
        # Per-user quotas under the user's row lock (api_service/quotas.py).
        await lock_user(session, user_id)
        await check_initiate(session, settings, user_id, body.size)
        video = Video(
            owner_id=user_id,
            title=title,
            original_file_name=file_name,
            status=VideoStatus.UPLOADING,
            declared_size=body.size,
            visibility=body.visibility,
        )
        session.add(video)
        await session.flush()  # the key needs the id
        video.source_key = raw_key(video.id, ext)
    key = video.source_key
    assert key is not None
    expiry = settings.s3.upload_url_expiry
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expiry)
    if multipart:
        try:
            upload_id = await storage.create_multipart(key)
            async with sessions() as session, session.begin():
                await session.execute(
                    update(Video).where(Video.id == video.id).values(upload_id=upload_id)
                )
        except BaseException:
            # No half-started upload left behind; an S3 upload without a row is the
            # janitor's (after upload.orphan_grace).
            async with sessions() as session, session.begin():
                await session.execute(delete(Video).where(Video.id == video.id))
            raise
        log.info("multipart upload initiated", video_id=video.id)
        return InitiateUploadResponse(
            video_id=video.id,
            upload="multipart",
            upload_url=None,
            multipart=MultipartUploadInfo(
                upload_id=upload_id,
                key=key,
                part_size=suggested_part_size(body.size, settings.upload.part_size),
            ),
            expires_at=expires_at,
            max_size=settings.upload.max_size,
        )
    limit = single_upload_limit(settings, body.size)
    upload_url = await storage.presign_put(key, expiry, content_length=body.size)
    post = await storage.presign_post(key, expiry, limit)
    log.info("upload initiated", video_id=video.id)
    return InitiateUploadResponse(
        video_id=video.id,
        upload_url=upload_url,
        upload_post=PresignedPostResponse(url=post.url, fields=post.fields),
        expires_at=expires_at,
        max_size=limit,
    )
