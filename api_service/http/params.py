"""Path parameters shared by several routes."""

from __future__ import annotations

from aiohttp import web

from api_service.http.errors import not_found

# Video ids are BIGINT: more digits than this cannot name a row (and would overflow).
_VIDEO_ID_MAX_DIGITS = 19


def video_id_param(request: web.Request) -> int:
    """The ``{video_id}`` of the path; anything that cannot be a video's id is a 404."""
    raw = request.match_info["video_id"]
    if not raw.isdigit() or len(raw) > _VIDEO_ID_MAX_DIGITS or int(raw) <= 0:
        raise not_found("video")
    return int(raw)
