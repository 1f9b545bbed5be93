"""The multipart routes Uppy's ``@uppy/aws-s3`` plugin (and Companion) speak, under /api/v1/
with the bearer token: create, sign part, list parts, complete, abort.

The key is always the one the server chose for a video the caller owns; a key or upload id
that does not match such a video is a 404. Completing the multipart upload also completes the
video (its jobs are queued), so an Uppy client needs nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import structlog
from aiohttp import web
from botocore.exceptions import ClientError
from pydantic import BaseModel

from api_service.context import SESSIONS, SETTINGS, STORAGE
from api_service.db.models import Video
from api_service.http.errors import ApiError, not_found
from api_service.http.operations import DeclaredHandler, Handler, operation
from api_service.http.schemas import InitiateUploadRequest
from api_service.uploads.finish import (
    enqueue_processing,
    fail_upload,
    reject_too_large,
    upload_limit,
)
from api_service.uploads.parts import (
    PartsRejected,
    claimed_parts,
    newest_per_number,
    total_size,
)
from api_service.uploads.schemas import (
    CompleteMultipartRequest,
    CompleteMultipartResponse,
    CreateMultipartRequest,
    CreateMultipartResponse,
    EmptyResponse,
    KeyQuery,
    SignPartResponse,
    UploadedPart,
    UploadedParts,
)
from api_service.uploads.start import start_upload, validate_upload_request
from shared.settings import S3_MAX_PARTS
from shared.status import VideoStatus

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)

BASE = "/api/v1/s3/multipart"
_KEY = re.compile(r"^raw/(?P<video_id>\d{1,19})/[0-9a-f-]{36}\.[a-z0-9]{1,8}$")
_UPLOAD_ID = "{upload_id}"


def _unquote(etag: str) -> str:
    return etag.strip().strip('"')


async def _upload_video(request: web.Request, user_id: int, query: KeyQuery) -> Video:
    """The caller's video whose multipart upload the path and ``?key=`` name."""
    key = query.key
    upload_id = request.match_info["upload_id"]
    match = _KEY.match(key)
    if match is None:
        raise not_found("upload")
    async with request.app[SESSIONS]() as session:
        video = await session.get(Video, int(match["video_id"]))
    if (
        video is None
        or video.owner_id != user_id
        or video.source_key != key
        or video.upload_id is None
        or video.upload_id != upload_id
    ):
        raise not_found("upload")
    structlog.contextvars.bind_contextvars(video_id=video.id)
    if video.status != VideoStatus.UPLOADING:
        raise ApiError(409, "invalid_status", f"video is {video.status.value}, not uploading")
    return video


def _upload_operation(
    summary: str, response: type[BaseModel]
) -> Callable[[DeclaredHandler], Handler]:
    """Declare a route that finds its upload with ``_upload_video`` (its handler takes the
    bearer ``user_id`` and ``query: KeyQuery``): the 404 and 409 that lookup answers."""
    return operation(summary, "uploads", response=response, errors=(404, 409))


@routes.post(BASE)
@operation(
    "Uppy/Companion: create a video and start its S3 multipart upload",
    "uploads",
    response=CreateMultipartResponse,
)
async def create_multipart(
    request: web.Request, user_id: int, body: CreateMultipartRequest
) -> web.Response:
    settings = request.app[SETTINGS]
    meta = body.metadata
    title = meta.get("title") or meta.get("name")
    size = body.size if body.size is not None else meta.get("size")
    initiate = InitiateUploadRequest.model_validate(
        {
            "file_name": body.filename,
            "content_type": body.type or None,
            "title": title if isinstance(title, str) and title.strip() else None,
            "size": size,
            "multipart": True,
        }
    )
    ext = validate_upload_request(settings, initiate)
    started = await start_upload(request.app, user_id, initiate, ext, multipart=True)
    assert started.multipart is not None
    response = CreateMultipartResponse(
        uploadId=started.multipart.upload_id,
        key=started.multipart.key,
        video_id=started.video_id,
        part_size=started.multipart.part_size,
    )
    return web.json_response(response.model_dump(mode="json"), status=200)


@routes.get(BASE + "/" + _UPLOAD_ID + "/{part_number}")
@_upload_operation(
    "Uppy/Companion: presigned PUT URL of one part (signed on demand)", SignPartResponse
)
async def sign_part(request: web.Request, user_id: int, query: KeyQuery) -> web.Response:
    video = await _upload_video(request, user_id, query)
    raw = request.match_info["part_number"]
    part_number = int(raw) if raw.isdigit() and len(raw) <= 6 else 0
    if not 1 <= part_number <= S3_MAX_PARTS:
        raise ApiError(400, "validation_error", f"invalid part_number: must be 1 to {S3_MAX_PARTS}")
    assert video.source_key is not None and video.upload_id is not None
    expiry = request.app[SETTINGS].s3.upload_url_expiry
    url = await request.app[STORAGE].presign_part(
        video.source_key, video.upload_id, part_number, expiry
    )
    return web.json_response(SignPartResponse(url=url, expires=expiry).model_dump(mode="json"))


@routes.get(BASE + "/" + _UPLOAD_ID)
@_upload_operation("Uppy/Companion: the parts uploaded so far (to resume)", UploadedParts)
async def list_parts(request: web.Request, user_id: int, query: KeyQuery) -> web.Response:
    video = await _upload_video(request, user_id, query)
    assert video.source_key is not None and video.upload_id is not None
    parts = await request.app[STORAGE].list_parts(video.source_key, video.upload_id)
    if parts is None:
        raise not_found("upload")
    body = UploadedParts(
        [
            UploadedPart(PartNumber=p.number, Size=p.size, ETag=f'"{p.etag}"')
            for p in newest_per_number(parts)
        ]
    )
    return web.json_response(body.model_dump(mode="json"))


@routes.post(BASE + "/" + _UPLOAD_ID + "/complete")
@_upload_operation(
    "Uppy/Companion: complete the multipart upload and queue the video's jobs",
    CompleteMultipartResponse,
)
async def complete_multipart(
    request: web.Request, user_id: int, query: KeyQuery, body: CompleteMultipartRequest
) -> web.Response:
    video = await _upload_video(request, user_id, query)
    app = request.app
    storage = app[STORAGE]
    key, upload_id = video.source_key, video.upload_id
    assert key is not None and upload_id is not None
    # Sizes come from the store, never from the client; the client's ETags pick the parts.
    stored = await storage.list_parts(key, upload_id)
    if stored is None:
        raise not_found("upload")
    claimed = {p.PartNumber: _unquote(p.ETag) for p in body.parts}
    if len(claimed) != len(body.parts):
        raise ApiError(400, "parts_mismatch", "invalid parts: a part number appears twice")
    try:
        if not stored:
            total_size(stored, 0)  # "no parts uploaded yet"
        chosen = claimed_parts(stored, claimed)
        total_size(chosen, upload_limit(app[SETTINGS], video))
    except PartsRejected as exc:
        if exc.status == 413:
            await storage.abort_multipart(key, upload_id)
            await fail_upload(app, video, exc.message, None)
        raise ApiError(exc.status, exc.code, exc.message) from None
    try:
        await storage.complete_multipart(key, upload_id, [(p.number, p.etag) for p in chosen])
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchUpload":
            raise not_found("upload") from None
        if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
            raise ApiError(400, "invalid_parts", f"the store refused the parts: {code}") from None
        raise
    info = await storage.head(key)
    if info is None:
        raise ApiError(409, "upload_not_found", "the completed object is missing")
    if info.size > upload_limit(app[SETTINGS], video):
        raise await reject_too_large(app, video, info.size)
    await enqueue_processing(app, video, info.size, info.etag)
    base = str(app[SETTINGS].server.public_base_url).rstrip("/")
    response = CompleteMultipartResponse(
        location=f"{base}/api/v1/videos/{video.id}",
        key=key,
        video_id=video.id,
        status=VideoStatus.TRANSCODING,
    )
    return web.json_response(response.model_dump(mode="json"))


@routes.delete(BASE + "/" + _UPLOAD_ID)
@_upload_operation(
    "Uppy/Companion: abort the upload (its parts are dropped, the video fails)", EmptyResponse
)
async def abort_multipart(request: web.Request, user_id: int, query: KeyQuery) -> web.Response:
    video = await _upload_video(request, user_id, query)
    assert video.source_key is not None and video.upload_id is not None
    await request.app[STORAGE].abort_multipart(video.source_key, video.upload_id)
    await fail_upload(request.app, video, "upload aborted by the client", None)
    log.info("multipart upload aborted")
    return web.json_response({})
