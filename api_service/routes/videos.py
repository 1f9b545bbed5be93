"""Upload (initiate, complete), read, list and delete videos."""

from __future__ import annotations

from collections import defaultdict

import structlog
from aiohttp import web
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.context import SESSIONS, SETTINGS, STORAGE
from api_service.db.models import OutboxMessage, Video, VideoSource
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
from api_service.ratelimit import enforce_initiate
from api_service.uploads.finish import enqueue_processing, reject_too_large, upload_limit
from api_service.uploads.start import start_upload, validate_upload_request, wants_multipart
from api_service.views import video_response
from api_service.visibility import can_view
from shared.keys import raw_prefix, video_prefixes
from shared.status import VideoStatus

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


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
    "Create a video and get a presigned PUT URL (or a multipart upload) for its file",
    "videos",
    status=201,
    response=InitiateUploadResponse,
    errors=(429,),
)
async def initiate_upload(
    request: web.Request, user_id: int, body: InitiateUploadRequest
) -> web.Response:
    settings = request.app[SETTINGS]
    ext = validate_upload_request(settings, body)
    await enforce_initiate(request, user_id)
    response = await start_upload(
        request.app, user_id, body, ext, multipart=wants_multipart(settings, body)
    )
    return web.json_response(response.model_dump(mode="json"), status=201)


@routes.post("/api/v1/videos/upload/complete")
@operation(
    "Report the upload done; queues the cover and transcode jobs",
    "videos",
    status=202,
    response=CompleteUploadResponse,
    errors=(404, 409, 429),
)
async def complete_upload(
    request: web.Request, user_id: int, body: CompleteUploadRequest
) -> web.Response:
    settings = request.app[SETTINGS]
    storage = request.app[STORAGE]
    sessions = request.app[SESSIONS]
    async with sessions() as session:
        video = await _owned_video(session, body.video_id, user_id)
    structlog.contextvars.bind_contextvars(video_id=video.id)
    if video.status != VideoStatus.UPLOADING or video.source_key is None:
        raise ApiError(409, "invalid_status", f"video is {video.status.value}, not uploading")
    info = await storage.head(video.source_key)
    if info is None:
        hint = (
            "complete the multipart upload first (POST /api/v1/s3/multipart/{upload_id}"
            "/complete?key=)"
            if video.upload_id
            else "PUT the file to upload_url first"
        )
        raise ApiError(409, "upload_not_found", f"upload not found: {hint}")
    if info.size > upload_limit(settings, video):
        raise await reject_too_large(request.app, video, info.size)
    await enqueue_processing(request.app, video, info.size, info.etag)
    response = CompleteUploadResponse(video_id=video.id, status=VideoStatus.TRANSCODING)
    return web.json_response(response.model_dump(mode="json"), status=202)


@routes.get(r"/api/v1/videos/{video_id:\d+}")
@operation(
    "One video (online public and unlisted videos are readable by anyone)",
    "videos",
    response=VideoResponse,
    errors=(404,),
)
async def get_video(request: web.Request, user_id: int | None) -> web.Response:
    video_id = video_id_param(request)
    async with request.app[SESSIONS]() as session:
        video = await session.get(Video, video_id)
        # Online public and unlisted videos are readable by id (public as in the original
        # service); everything else is the owner's only (visibility.py).
        if video is None or not can_view(video, user_id):
            raise not_found("video")
        sources = (await _sources_by_video(session, [video.id]))[video.id]
    view = await video_response(
        request.app[SETTINGS],
        request.app[STORAGE],
        video,
        sources,
        for_owner=video.owner_id == user_id,
    )
    return web.json_response(view.model_dump(mode="json"))


@routes.get("/api/v1/videos")
@operation("The caller's videos, newest first", "videos", response=VideoListResponse)
async def list_videos(request: web.Request, user_id: int, query: VideoListQuery) -> web.Response:
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
    items = [
        await video_response(settings, storage, v, sources[v.id], for_owner=True) for v in videos
    ]
    response = VideoListResponse(
        items=items, limit=query.limit, offset=query.offset, total=total or 0
    )
    return web.json_response(response.model_dump(mode="json"))


@routes.delete(r"/api/v1/videos/{video_id:\d+}")
@operation("Delete a video with all its files", "videos", status=204, errors=(404,))
async def delete_video(request: web.Request, user_id: int) -> web.Response:
    video_id = video_id_param(request)
    sessions = request.app[SESSIONS]
    async with sessions() as session:
        await _owned_video(session, video_id, user_id)
    structlog.contextvars.bind_contextvars(video_id=video_id)
    # Objects first: if that fails the rows remain and the client can retry the delete.
    removed = 0
    storage = request.app[STORAGE]
    # A multipart upload in progress dies with the video: its part URLs stop working.
    await storage.abort_pending_under(raw_prefix(video_id))
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
