"""Live progress over Server-Sent Events (GET /api/v1/videos/{id}/events).

The stream is read from a second API instance that consumes nothing: the events reach the
database through the first one, so this also shows that any replica serves any client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from api_service.auth.tokens import issue_events_token, issue_playback_token
from harness.polling import eventually
from shared.keys import cover_key
from shared.messages import CoverReady, TranscodeProgress
from tests.api.helpers import succeeded
from tests.api.support import Api, User, start_api, with_overrides
from tests.api.videos import Videos
from tests.sse import SseStream
from tests.store import Store

WITHIN = 30.0


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def replica(api: Api) -> AsyncIterator[Api]:
    """Another API process's view of the same database: no relay, no event consumer, and
    heartbeats every 0.2 s so that a test sees them."""
    settings = with_overrides(api.settings, server={"events_heartbeat": 0.2})
    instance = await start_api(settings, run_relay=False, run_consumers=False)
    yield instance
    await instance.client.close()


def _on(replica: Api, events_url: str) -> str:
    """The same path and token, asked of the replica."""
    return f"{replica.base_url}/api/{events_url.split('/api/', 1)[1]}"


async def _video(api: Api, user: User, video_id: int) -> dict[str, Any]:
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_stream_reports_status_cover_progress_and_online_then_ends(
    api: Api, replica: Api, user: User, store: Store, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.uploaded(user)
    # The API applies only events of the jobs it issued for the video.
    cover_job = await videos.issued_job(video_id, "cover")
    job = await videos.issued_job(video_id, "transcode")
    video = await _video(api, user, video_id)
    assert video["events_url"].startswith(f"{api.base_url}/api/v1/videos/{video_id}/events?token=")
    url = _on(replica, video["events_url"])
    async with asyncio.timeout(WITHIN), http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        stream = SseStream(resp)
        first = await stream.next()
        assert (first.event, first.json()) == ("status", {"status": "transcoding", "progress": 0})

        await store.put(cover_key(video_id), b"\xff\xd8jpeg")
        await videos.publish(
            CoverReady(video_id=video_id, job_id=cover_job, cover_key=cover_key(video_id))
        )
        cover = await stream.next()
        assert cover.event == "cover"
        async with http.get(cover.json()["cover_url"]) as image:
            assert image.status == 200 and await image.read() == b"\xff\xd8jpeg"

        await videos.publish(TranscodeProgress(video_id=video_id, job_id=job, percent=40.0))
        progress = await stream.next()
        assert progress.event == "progress"
        assert progress.json() == {"status": "transcoding", "progress": 40.0}
        # While nothing changes, heartbeat comment lines keep the stream open.
        heartbeats = 0
        while heartbeats < 2:
            line = (await resp.content.readline()).strip()
            assert not line or line.startswith(b":"), line
            heartbeats += bool(line)

        await videos.publish(succeeded(video_id, job))
        online = await stream.next()
        assert online.event == "online" and online.id == "online"
        assert online.json()["status"] == "online"
        assert online.json()["playback_url"].startswith(f"{replica.base_url}/api/v1/videos/")
        assert [e async for e in stream.events()] == []  # then the stream ends
        assert resp.content.at_eof()
    last_progress_id = progress.id

    # A client that reconnects after the final event is told to stop (204 ends EventSource);
    # one that missed it gets it at once.
    async with http.get(url, headers={"Last-Event-ID": "online"}) as again:
        assert again.status == 204
    async with (
        asyncio.timeout(WITHIN),
        http.get(url, headers={"Last-Event-ID": last_progress_id or ""}) as again,
    ):
        assert again.status == 200
        events = [e async for e in SseStream(again).events()]
        assert [e.event for e in events] == ["cover", "online"]


async def test_failed_video_ends_the_stream_with_the_reason(
    api: Api, user: User, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.uploaded(user)
    video = await _video(api, user, video_id)
    async with asyncio.timeout(WITHIN), http.get(video["events_url"]) as resp:
        stream = SseStream(resp)
        assert (await stream.next()).event == "status"
        await videos.fail(video_id, "the file is not a video")
        failed = await stream.next()
        assert failed.event == "failed"
        assert failed.json()["error"].endswith("the file is not a video")
        assert [e async for e in stream.events()] == []


async def test_stream_needs_its_own_video_scoped_token(
    api: Api, user: User, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.uploaded(user)
    base = f"{api.base_url}/api/v1/videos/{video_id}/events"
    auth = api.settings.auth
    cases = {
        "": 401,
        "?token=garbage": 401,
        # The playback token and the access token are not events tokens.
        f"?token={issue_playback_token(auth, video_id, 60).token}": 401,
        f"?token={user.token}": 401,
        # Another video's token shows nothing about this one.
        f"?token={issue_events_token(auth, video_id + 1000).token}": 404,
    }
    for query, status in cases.items():
        async with http.get(base + query) as resp:
            body = await resp.json()
            assert resp.status == status, (query, body)
            assert body["error"]["code"] in {"unauthorized", "not_found"}
    # A deleted video's token finds nothing.
    token = issue_events_token(auth, video_id).token
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    async with http.get(f"{base}?token={token}") as resp:
        assert resp.status == 404


async def test_a_client_that_goes_away_ends_its_stream_cleanly(
    api: Api, replica: Api, user: User, videos: Videos
) -> None:
    video_id = await videos.uploaded(user)
    url = _on(replica, (await _video(api, user, video_id))["events_url"])
    route = 'route="/api/v1/videos/{video_id}/events"'

    async def ended(status: str) -> float:
        return await replica.metric(
            f'http_requests_total{{method="GET",{route},status="{status}"}}'
        )

    before = await ended("499")
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert (await SseStream(resp).next()).event == "status"
    # aiohttp cancels the handler; it is logged as 499 (client closed), not as an error.
    await eventually(lambda: ended("499"), lambda n: n == before + 1)
    assert await ended("500") == 0


async def test_a_stream_ends_after_its_lifetime_and_a_reconnect_resumes(
    api: Api, user: User, videos: Videos, http: aiohttp.ClientSession
) -> None:
    settings = with_overrides(api.settings, server={"events_max_seconds": 1.0})
    short = await start_api(settings, run_relay=False, run_consumers=False)
    try:
        video_id = await videos.uploaded(user)
        url = _on(short, (await _video(api, user, video_id))["events_url"])
        async with asyncio.timeout(WITHIN), http.get(url) as resp:
            events = [e async for e in SseStream(resp).events()]
        # Still transcoding: one status event, then the server ended the stream.
        assert [(e.event, e.json()["status"]) for e in events] == [("status", "transcoding")]
        async with (
            asyncio.timeout(WITHIN),
            http.get(url, headers={"Last-Event-ID": events[0].id or ""}) as again,
        ):
            assert again.status == 200
            assert (await SseStream(again).next()).event == "status"
    finally:
        await short.client.close()
