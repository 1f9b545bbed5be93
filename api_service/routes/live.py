"""Live progress of one video as Server-Sent Events: ``GET /api/v1/videos/{id}/events``.

The stream reports what the video row says: ``status`` when the status changes, ``cover``
(with ``cover_url``) once the cover exists, ``progress`` (percent) while it transcodes, and
finally ``online`` or ``failed`` with the whole video (``playback_url`` or ``error``), after
which it ends. A deleted video ends it with ``deleted``.

The source is the database, polled at ``server.events_poll_interval`` with a primary-key
read of a few columns, so any API replica can serve any client and nothing depends on one
process's memory. Heartbeat comment lines (``server.events_heartbeat``) keep proxies from
closing an idle stream. A stream lasts at most ``server.events_max_seconds``; EventSource then
reconnects by itself. Every event carries an id naming the state it reports; the final
events' ids are ``online`` and ``failed``. A client reconnecting with ``Last-Event-ID`` gets
the current state again (a snapshot, so nothing is missed), or ``204 No Content`` when it
already has the final event, which tells EventSource to stop reconnecting.

EventSource cannot send an Authorization header: the stream takes the short-lived,
video-scoped token of the video's ``events_url`` in the query string instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from sqlalchemy import select

from api_service.auth.current import query_token_grant
from api_service.auth.tokens import decode_events_grant
from api_service.context import SESSIONS, SETTINGS, STORAGE
from api_service.db.models import Video, VideoSource
from api_service.http.errors import not_found
from api_service.http.operations import operation
from api_service.http.params import video_id_param
from api_service.views import video_response
from shared.status import VideoStatus

routes = web.RouteTableDef()

# How long EventSource waits before reconnecting after a dropped connection.
RECONNECT_MS = 2000
FINAL = {VideoStatus.ONLINE: "online", VideoStatus.FAILED: "failed"}


@dataclass(frozen=True)
class Snapshot:
    """The few columns of a video row that the stream reports."""

    status: VideoStatus
    progress: float
    cover_key: str | None

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @property
    def event_id(self) -> str:
        if self.status in FINAL:
            return FINAL[self.status]
        cover = "c" if self.cover_key else "n"
        return f"{self.status.value}.{round(self.progress, 1)}.{cover}"


# Set when the stream's token was issued to the video's owner.
_OWNER = web.RequestKey("events_token_owner", bool)


async def _snapshot(request: web.Request, video_id: int) -> Snapshot | None:
    async with request.app[SESSIONS]() as session:
        row = (
            await session.execute(
                select(Video.status, Video.progress, Video.cover_key).where(Video.id == video_id)
            )
        ).first()
    return None if row is None else Snapshot(row.status, row.progress, row.cover_key)


async def _whole_video(request: web.Request, video_id: int, owner: bool) -> dict[str, Any] | None:
    async with request.app[SESSIONS]() as session:
        video = await session.get(Video, video_id)
        if video is None:
            return None
        sources = list(
            await session.scalars(select(VideoSource).where(VideoSource.video_id == video_id))
        )
    # A private video's playback URLs go to its owner's stream only (visibility.py).
    view = await video_response(
        request.app[SETTINGS], request.app[STORAGE], video, sources, for_owner=owner
    )
    return view.model_dump(mode="json")


async def _changes(
    request: web.Request, video_id: int, before: Snapshot | None, now: Snapshot
) -> list[tuple[str, dict[str, Any]]]:
    """The events that take a client from ``before`` (None: knows nothing) to ``now``."""
    events: list[tuple[str, dict[str, Any]]] = []
    if not now.final and (before is None or before.status != now.status):
        events.append(("status", {"status": now.status.value, "progress": now.progress}))
    if now.cover_key and (before is None or not before.cover_key):
        expiry = request.app[SETTINGS].s3.download_url_expiry
        cover_url = await request.app[STORAGE].presign_get(now.cover_key, expiry)
        events.append(("cover", {"cover_url": cover_url}))
    if (
        now.status == VideoStatus.TRANSCODING
        and before is not None
        and before.progress != now.progress
    ):
        events.append(("progress", {"status": now.status.value, "progress": now.progress}))
    if now.final:
        video = await _whole_video(request, video_id, request.get(_OWNER, False))
        if video is None:
            events.append(("deleted", {"id": video_id}))
        else:
            events.append((FINAL[now.status], video))
    return events


async def _send(
    stream: EventSourceResponse, events: list[tuple[str, dict[str, Any]]], id_: str
) -> None:
    for name, data in events:
        await stream.send(json.dumps(data), event=name, id=id_, retry=RECONNECT_MS)


@routes.get(r"/api/v1/videos/{video_id:\d+}/events")
@operation(
    "Live progress as Server-Sent Events (status, cover, progress, then online or failed)",
    "videos",
    auth="events",
    errors=(404,),
    content_type="text/event-stream",
)
async def video_events(request: web.Request) -> web.StreamResponse:
    video_id = video_id_param(request)
    _, grant = query_token_grant(request, video_id, "events", decode_events_grant)
    request[_OWNER] = grant.owner
    settings = request.app[SETTINGS].server
    now = await _snapshot(request, video_id)
    if now is None:
        raise not_found("video")
    if now.final and request.headers.get("Last-Event-ID") == now.event_id:
        return web.Response(status=204)  # the client has the final state: stop reconnecting
    # aiohttp-sse sets the stream headers (including X-Accel-Buffering: no for nginx) and
    # sends the heartbeat comments; a failed heartbeat marks the client gone.
    async with sse_response(request, ping_interval=settings.events_heartbeat) as stream:
        # A client that goes away is the normal end of most streams, not an error.
        with contextlib.suppress(ConnectionResetError):
            await _stream(request, stream, video_id, now)
    return stream


async def _stream(
    request: web.Request, stream: EventSourceResponse, video_id: int, now: Snapshot
) -> None:
    settings = request.app[SETTINGS].server
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.events_max_seconds
    before: Snapshot | None = None
    while stream.is_connected() and loop.time() < deadline:
        await _send(stream, await _changes(request, video_id, before, now), now.event_id)
        if now.final:
            return
        before = now
        await asyncio.sleep(settings.events_poll_interval)
        current = await _snapshot(request, video_id)
        if current is None:
            await _send(stream, [("deleted", {"id": video_id})], "deleted")
            return
        now = current
