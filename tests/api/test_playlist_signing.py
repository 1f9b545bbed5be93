"""A long video's variant playlist is signed once per window, off the event loop, and the
signed URLs really load from the private bucket."""

from __future__ import annotations

import asyncio

import aiohttp
import m3u8

from api_service.context import PLAYLIST_CACHE
from shared.keys import rendition_playlist_key
from tests.api.support import Api, User
from tests.api.videos import Videos
from tests.store import Store

SIX_HOURS_OF_SEGMENTS = 3600


async def test_six_hour_playlist_is_signed_once(
    api: Api, user: User, store: Store, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.online(user, segments=SIX_HOURS_OF_SEGMENTS)
    resp = await api.client.get(f"/api/v1/videos/{video_id}")
    variant_url = (await resp.json())["sources"][0]["url"]
    # One segment object, so a signed URL can be fetched for real.
    first_segment = rendition_playlist_key(video_id, 240).rsplit("/", 1)[0] + "/240p_00000.ts"
    await store.put(first_segment, b"\x47segment")

    cache = api.app[PLAYLIST_CACHE]
    misses = cache.misses

    async def fetch() -> str:
        async with http.get(variant_url) as resp:
            assert resp.status == 200
            return await resp.text()

    # Eight players start at once: one signing run serves them all.
    bodies = await asyncio.gather(*(fetch() for _ in range(8)))
    assert cache.misses == misses + 1
    assert len(set(bodies)) == 1
    playlist = m3u8.loads(bodies[0])
    assert len(playlist.segments) == SIX_HOURS_OF_SEGMENTS
    assert all("X-Amz-Signature=" in s.uri for s in playlist.segments)
    async with http.get(playlist.segments[0].uri) as resp:
        assert resp.status == 200
        assert await resp.read() == b"\x47segment"

    # Later requests within the window are served from the cache.
    assert await fetch() == bodies[0]
    assert cache.misses == misses + 1
