"""Turning video rows into API responses with short-lived signed URLs."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from api_service.auth.tokens import issue_events_token, issue_playback_token
from api_service.db.models import Video, VideoSource
from api_service.http.schemas import SourceResponse, VideoColumns, VideoResponse
from api_service.storage import Storage
from shared.settings import Settings
from shared.status import VideoStatus


def hls_base_url(settings: Settings, video_id: int) -> str:
    return f"{str(settings.server.public_base_url).rstrip('/')}/api/v1/videos/{video_id}/hls"


def variant_url(settings: Settings, video_id: int, quality: str, token: str) -> str:
    return f"{hls_base_url(settings, video_id)}/{quote(quality, safe='')}.m3u8?token={token}"


def master_url(settings: Settings, video_id: int, token: str) -> str:
    return f"{hls_base_url(settings, video_id)}/master.m3u8?token={token}"


def events_url(settings: Settings, video_id: int, *, owner: bool = False) -> str:
    """The live-progress stream with its own video-scoped token: EventSource cannot send an
    Authorization header."""
    token = issue_events_token(settings.auth, video_id, owner=owner).token
    base = str(settings.server.public_base_url).rstrip("/")
    return f"{base}/api/v1/videos/{video_id}/events?token={token}"


async def video_response(
    settings: Settings,
    storage: Storage,
    video: Video,
    sources: Sequence[VideoSource],
    *,
    for_owner: bool = False,
) -> VideoResponse:
    expiry = settings.s3.download_url_expiry
    cover_url = await storage.presign_get(video.cover_key, expiry) if video.cover_key else None
    playback_url: str | None = None
    source_items: list[SourceResponse] = []
    if video.status == VideoStatus.ONLINE and video.master_key:
        token = issue_playback_token(settings.auth, video.id, expiry, owner=for_owner).token
        playback_url = master_url(settings, video.id, token)
        for source in sorted(sources, key=lambda s: s.height, reverse=True):
            source_items.append(
                SourceResponse(
                    quality=source.quality,
                    format=source.format,
                    url=variant_url(settings, video.id, source.quality, token),
                    width=source.width,
                    height=source.height,
                    bandwidth=source.bandwidth,
                )
            )
    return VideoResponse(
        **dict(VideoColumns.model_validate(video)),
        cover_url=cover_url,
        sources=source_items,
        playback_url=playback_url,
        events_url=events_url(settings, video.id, owner=for_owner),
    )
