"""The owner changes a video's title or visibility: ``PATCH /api/v1/videos/{id}``."""

from __future__ import annotations

import structlog
from aiohttp import web
from sqlalchemy import select

from api_service.context import SESSIONS, SETTINGS, STORAGE
from api_service.db.models import Video, VideoSource
from api_service.http.errors import not_found
from api_service.http.operations import operation
from api_service.http.params import video_id_param
from api_service.http.schemas import UpdateVideoRequest, VideoResponse
from api_service.views import video_response

routes = web.RouteTableDef()
log = structlog.get_logger(__name__)


@routes.patch(r"/api/v1/videos/{video_id:\d+}")
@operation(
    "Change a video's title or visibility (owner)", "videos", response=VideoResponse, errors=(404,)
)
async def update_video(
    request: web.Request, user_id: int, body: UpdateVideoRequest
) -> web.Response:
    video_id = video_id_param(request)
    async with request.app[SESSIONS]() as session, session.begin():
        video = await session.get(Video, video_id, with_for_update=True)
        if video is None or video.owner_id != user_id:
            raise not_found("video")
        if body.title is not None:
            video.title = body.title
        if body.visibility is not None and body.visibility != video.visibility:
            log.info("visibility changed", video_id=video.id, visibility=body.visibility.value)
            video.visibility = body.visibility
        sources = list(
            await session.scalars(select(VideoSource).where(VideoSource.video_id == video.id))
        )
    view = await video_response(
        request.app[SETTINGS], request.app[STORAGE], video, sources, for_owner=True
    )
    return web.json_response(view.model_dump(mode="json"))
