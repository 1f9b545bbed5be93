"""Upload (initiate, complete), read, list and delete videos."""

from __future__ import annotations

import posixpath
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.auth.current import optional_user_id, require_user_id
from api_service.context import OUTBOX_WAKE, SESSIONS, SETTINGS, STORAGE, TOPOLOGY
from api_service.db.models import ETAG_MAX, FILE_NAME_MAX, OutboxMessage, Video, VideoSource
from api_service.http.body import read_json
from api_service.http.errors import ApiError, not_found
from api_service.http.operations import operation
from api_service.http.params import video_id_param
from api_service.http.schemas import (
    CompleteUploadRequest,
    CompleteUploadResponse,
    InitiateUploadRequest,
    InitiateUploadResponse,
    VideoListQuery,
    VideoListResponse,
    VideoResponse,
)
from api_service.views import video_response
from shared.keys import raw_key, video_prefixes
from shared.messages import CoverJob, TranscodeJob
from shared.settings import Settings
from shared.status import VideoStatus

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


def _extension(file_name: str) -> str:
    # Both separators: a Windows client may send a full path.
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    return posixpath.splitext(base)[1].lower()


def _validate_initiate(settings: Settings, body: InitiateUploadRequest) -> str:
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
    return ext


async def _owned_video(session: AsyncSession, video_id: int, user_id: int) -> Video:
    video = await session.get(Video, video_id)
    # Someone else's video is indistinguishable from a missing one.
    if video is None or video.owner_id != user_id:
        raise not_found("video")
    return video


async def _sources_by_video(
    session: AsyncSession, video_ids: list[int]
) -> dict[int, list[VideoSource]]:
    grouped: dict[int, list[VideoSource]] = defaultdict(list)
    if video_ids:
        rows = await session.scalars(select(VideoSource).where(VideoSource.video_id.in_(video_ids)))
        for row in rows:
            grouped[row.video_id].append(row)
    return grouped


@routes.post("/api/v1/videos/upload/initiate")
@operation(
    "Create a video and get a presigned PUT URL for its file",
    "videos",
    status=201,
    request=InitiateUploadRequest,
    response=InitiateUploadResponse,
    auth="bearer",
    errors=(400, 401, 413),
)
async def initiate_upload(request: web.Request) -> web.Response:
    user_id = require_user_id(request)
    settings = request.app[SETTINGS]
    body = await read_json(request, InitiateUploadRequest)
    ext = _validate_initiate(settings, body)
    file_name = (
        body.file_name.replace("\\", "/").rsplit("/", 1)[-1][:FILE_NAME_MAX] or body.file_name
    )
    title = body.title or posixpath.splitext(file_name)[0] or file_name
    async with request.app[SESSIONS]() as session, session.begin():
        video = Video(
            owner_id=user_id,
            title=title,
            original_file_name=file_name,
            status=VideoStatus.UPLOADING,
        )
        session.add(video)
        await session.flush()  # the key needs the id
        video.source_key = raw_key(video.id, ext)
    expiry = settings.s3.upload_url_expiry
    assert video.source_key is not None
    upload_url = await request.app[STORAGE].presign_put(video.source_key, expiry)
    log.info("upload initiated", video_id=video.id)
    response = InitiateUploadResponse(
        video_id=video.id,
        upload_url=upload_url,
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expiry),
        max_size=settings.upload.max_size,
    )
    return web.json_response(response.model_dump(mode="json"), status=201)


@routes.post("/api/v1/videos/upload/complete")
@operation(
    "Report the upload done; queues the cover and transcode jobs",
    "videos",
    status=202,
    request=CompleteUploadRequest,
    response=CompleteUploadResponse,
    auth="bearer",
    errors=(400, 401, 404, 409, 413),
)
async def complete_upload(request: web.Request) -> web.Response:
    user_id = require_user_id(request)
    settings = request.app[SETTINGS]
    storage = request.app[STORAGE]
    body = await read_json(request, CompleteUploadRequest)
    sessions = request.app[SESSIONS]
    async with sessions() as session:
        video = await _owned_video(session, body.video_id, user_id)
    structlog.contextvars.bind_contextvars(video_id=video.id)
    if video.status != VideoStatus.UPLOADING or video.source_key is None:
        raise ApiError(409, "invalid_status", f"video is {video.status.value}, not uploading")
    info = await storage.head(video.source_key)
    if info is None:
        raise ApiError(
            409, "upload_not_found", "upload not found: PUT the file to upload_url first"
        )
    max_size = settings.upload.max_size
    if info.size > max_size:
        reason = f"upload is {info.size} bytes, over the maximum of {max_size} bytes"
        await storage.delete(video.source_key)
        async with sessions() as session, session.begin():
            await session.execute(
                update(Video)
                .where(Video.id == video.id, Video.status == VideoStatus.UPLOADING)
                .values(status=VideoStatus.FAILED, error=reason, size=info.size)
            )
        log.info("upload rejected", reason=reason)
        raise ApiError(413, "file_too_large", reason)

    topology = request.app[TOPOLOGY]
    jobs: list[CoverJob | TranscodeJob] = [
        CoverJob(video_id=video.id, job_id=uuid.uuid4(), source_key=video.source_key),
        TranscodeJob(video_id=video.id, job_id=uuid.uuid4(), source_key=video.source_key),
    ]
    async with sessions() as session, session.begin():
        # Guarded: of two racing completes exactly one matches the uploading row.
        result = await session.execute(
            update(Video)
            .where(Video.id == video.id, Video.status == VideoStatus.UPLOADING)
            .values(
                status=VideoStatus.TRANSCODING,
                size=info.size,
                etag=info.etag[:ETAG_MAX],
                progress=0.0,
                error=None,
            )
        )
        assert isinstance(result, CursorResult)
        won = result.rowcount == 1
        if won:
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
    request.app[OUTBOX_WAKE].set()
    log.info("upload completed", size=info.size, jobs=[str(j.job_id) for j in jobs])
    response = CompleteUploadResponse(video_id=video.id, status=VideoStatus.TRANSCODING)
    return web.json_response(response.model_dump(mode="json"), status=202)


@routes.get(r"/api/v1/videos/{video_id:\d+}")
@operation(
    "One video (online videos are public)",
    "videos",
    response=VideoResponse,
    auth="optional",
    errors=(401, 404),
)
async def get_video(request: web.Request) -> web.Response:
    video_id = video_id_param(request)
    user_id = optional_user_id(request)
    async with request.app[SESSIONS]() as session:
        video = await session.get(Video, video_id)
        # Online videos are public (as in the original service); the rest owner-only.
        if video is None or (video.status != VideoStatus.ONLINE and video.owner_id != user_id):
            raise not_found("video")
        sources = (await _sources_by_video(session, [video.id]))[video.id]
    view = await video_response(request.app[SETTINGS], request.app[STORAGE], video, sources)
    return web.json_response(view.model_dump(mode="json"))


@routes.get("/api/v1/videos")
@operation(
    "The caller's videos, newest first",
    "videos",
    response=VideoListResponse,
    query=VideoListQuery,
    auth="bearer",
    errors=(400, 401),
)
async def list_videos(request: web.Request) -> web.Response:
    user_id = require_user_id(request)
    query = VideoListQuery.model_validate(dict(request.query))
    async with request.app[SESSIONS]() as session:
        total = await session.scalar(
            select(func.count()).select_from(Video).where(Video.owner_id == user_id)
        )
        videos = list(
            await session.scalars(
                select(Video)
                .where(Video.owner_id == user_id)
                .order_by(Video.created_at.desc(), Video.id.desc())
                .limit(query.limit)
                .offset(query.offset)
            )
        )
        sources = await _sources_by_video(session, [v.id for v in videos])
    settings, storage = request.app[SETTINGS], request.app[STORAGE]
    items = [await video_response(settings, storage, v, sources[v.id]) for v in videos]
    response = VideoListResponse(
        items=items, limit=query.limit, offset=query.offset, total=total or 0
    )
    return web.json_response(response.model_dump(mode="json"))


@routes.delete(r"/api/v1/videos/{video_id:\d+}")
@operation(
    "Delete a video with all its files", "videos", status=204, auth="bearer", errors=(401, 404)
)
async def delete_video(request: web.Request) -> web.Response:
    user_id = require_user_id(request)
    video_id = video_id_param(request)
    sessions = request.app[SESSIONS]
    async with sessions() as session:
        await _owned_video(session, video_id, user_id)
    structlog.contextvars.bind_contextvars(video_id=video_id)
    # Objects first: if that fails the rows remain and the client can retry the delete.
    removed = 0
    storage = request.app[STORAGE]
    for prefix in video_prefixes(video_id):
        removed += await storage.delete_prefix(prefix)
    async with sessions() as session, session.begin():
        # Unsent jobs go with the video; a job already running finds no row when it
        # reports back, and its late outputs are cleaned up then (see events/consumer.py).
        await session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.video_id == video_id, OutboxMessage.sent_at.is_(None)
            )
        )
        await session.execute(delete(Video).where(Video.id == video_id))
    log.info("video deleted", objects=removed)
    return web.Response(status=204)
