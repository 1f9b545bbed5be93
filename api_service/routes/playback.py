"""HLS playback from a private bucket.

The API serves the (small) playlists and rewrites every entry: variant URIs in the master
point back at this API with the same playback token, segment URIs in a variant become
presigned S3 GET URLs. Segment bytes go straight from S3 to the player, never through us.
The playback token is a short-lived JWT scoped to one video, carried in the query string
because players cannot send an Authorization header.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from api_service.auth.current import query_token_grant
from api_service.auth.tokens import decode_playback_grant
from api_service.context import PLAYLIST_CACHE, PRESIGNER, SESSIONS, SETTINGS, STORAGE
from api_service.db.models import Video, VideoSource
from api_service.http.errors import ApiError, not_found
from api_service.http.operations import DeclaredHandler, Handler, operation
from api_service.http.params import video_id_param
from api_service.playlist_cache import SignedPlaylistCache, window_seconds
from api_service.presign import open_bulk_presigner
from api_service.storage import Storage
from api_service.views import variant_url
from api_service.visibility import can_play
from shared.keys import processed_prefix
from shared.status import VideoStatus

routes = web.RouteTableDef()

PLAYLIST_CONTENT_TYPE = "application/vnd.apple.mpegurl"
_URI_ATTRIBUTE = re.compile(r'URI="([^"]*)"')


async def signing(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the bulk presigner and the signed-playlist cache."""
    s3 = app[SETTINGS].s3
    with open_bulk_presigner(s3) as presigner:
        app[PRESIGNER] = presigner
        app[PLAYLIST_CACHE] = SignedPlaylistCache(window_seconds(s3.download_url_expiry))
        yield


@dataclass(frozen=True)
class _Playable:
    """What a playlist request may play: its token's video, online, with its renditions."""

    token: str
    video: Video
    sources: list[VideoSource]


async def _playable(request: web.Request) -> _Playable:
    """The video the playlist URL names, if its playback token and visibility allow it."""
    video_id = video_id_param(request)
    token, grant = query_token_grant(request, video_id, "playback", decode_playback_grant)
    async with request.app[SESSIONS]() as session:
        video = await session.get(Video, video_id)
        if video is None or video.status != VideoStatus.ONLINE or not video.master_key:
            raise not_found("video")
        # Checked on every request: a video made private stops playing for old tokens.
        if not can_play(video, grant):
            raise not_found("video")
        sources = list(
            await session.scalars(select(VideoSource).where(VideoSource.video_id == video_id))
        )
    return _Playable(token, video, sources)


def _resolve(base_key: str, uri: str, video_id: int) -> str:
    """The object key a playlist entry refers to, confined to the video's outputs."""
    if "://" in uri or uri.startswith("/"):
        raise ApiError(502, "bad_playlist", "playlist entry is not a relative path")
    key = posixpath.normpath(posixpath.join(posixpath.dirname(base_key), uri.split("?")[0]))
    if not key.startswith(processed_prefix(video_id)):
        raise ApiError(502, "bad_playlist", "playlist entry points outside the video")
    return key


async def _rewrite(text: str, rewrite_uri: Callable[[str], Awaitable[str]]) -> str:
    """Rewrite every URI of an m3u8 playlist: bare URI lines and URI="..." attributes."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            out.append(line)
        elif stripped.startswith("#"):
            match = _URI_ATTRIBUTE.search(stripped)
            if match:
                new_uri = await rewrite_uri(match.group(1))
                stripped = stripped[: match.start(1)] + new_uri + stripped[match.end(1) :]
            out.append(stripped)
        else:
            out.append(await rewrite_uri(stripped))
    return "\n".join(out) + "\n"


def _playlist_response(text: str, max_age: int) -> web.Response:
    return web.Response(
        text=text,
        content_type=PLAYLIST_CONTENT_TYPE,
        headers={"Cache-Control": f"private, max-age={max_age}"},
    )


async def _load(storage: Storage, key: str) -> str:
    data = await storage.get_bytes(key)
    if data is None:
        raise not_found("playlist")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(502, "bad_playlist", "playlist is not UTF-8 text") from None


def _playlist_operation(summary: str) -> Callable[[DeclaredHandler], Handler]:
    return operation(
        summary, "playback", auth="playback", errors=(404,), content_type=PLAYLIST_CONTENT_TYPE
    )


@routes.get(r"/api/v1/videos/{video_id:\d+}/hls/master.m3u8")
@_playlist_operation("Signed HLS master playlist")
async def master_playlist(request: web.Request) -> web.Response:
    playable = await _playable(request)
    video_id, master_key = playable.video.id, playable.video.master_key
    assert master_key is not None
    settings = request.app[SETTINGS]
    quality_by_key = {source.playlist_key: source.quality for source in playable.sources}

    async def rewrite(uri: str) -> str:
        key = _resolve(master_key, uri, video_id)
        quality = quality_by_key.get(key)
        if quality is None:
            raise ApiError(502, "bad_playlist", "master playlist names an unknown rendition")
        return variant_url(settings, video_id, quality, playable.token)

    text = await _rewrite(await _load(request.app[STORAGE], master_key), rewrite)
    return _playlist_response(text, max_age=60)


@routes.get(r"/api/v1/videos/{video_id:\d+}/hls/{quality:[A-Za-z0-9_-]{1,16}}.m3u8")
@_playlist_operation("Signed HLS variant playlist (segments are presigned S3 URLs)")
async def variant_playlist(request: web.Request) -> web.Response:
    playable = await _playable(request)
    video_id = playable.video.id
    quality = request.match_info["quality"]
    source = next((s for s in playable.sources if s.quality == quality), None)
    if source is None:
        raise not_found("rendition")
    playlist_key = source.playlist_key

    async def sign() -> str:
        text = await _load(request.app[STORAGE], playlist_key)
        return await _sign_variant(request.app, text, playlist_key, video_id)

    cache = request.app[PLAYLIST_CACHE]
    text = await cache.get((video_id, quality, playlist_key), sign)
    return _playlist_response(text, max_age=60)


async def _sign_variant(app: web.Application, text: str, playlist_key: str, video_id: int) -> str:
    """Every segment URI becomes a presigned GET URL, signed in one batch off the loop."""
    keys: dict[str, str] = {}

    async def collect(uri: str) -> str:
        keys[uri] = _resolve(playlist_key, uri, video_id)
        return uri

    await _rewrite(text, collect)
    urls = await app[PRESIGNER].presign_get_many(
        list(keys.values()), app[SETTINGS].s3.download_url_expiry
    )
    signed = dict(zip(keys, urls, strict=True))

    async def lookup(uri: str) -> str:
        return signed[uri]

    return await _rewrite(text, lookup)
