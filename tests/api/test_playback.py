"""HLS from a private bucket: a real player (ffprobe) opens playback_url and each source url;
the API serves rewritten playlists, segments come straight from S3 with signatures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import m3u8
import pytest_asyncio

from api_service.auth.tokens import issue_access_token, issue_playback_token
from tests.api.hls import upload_hls
from tests.api.support import Api, User
from tests.api.videos import Videos
from tests.media import ffprobe
from tests.store import Store


@pytest_asyncio.fixture(loop_scope="session")
async def online_video(
    api: Api, user: User, store: Store, videos: Videos, tmp_root: Path
) -> dict[str, Any]:
    """A video of ``user``, online with a real two-rung HLS ladder in the bucket."""
    video_id = await videos.uploaded(user)
    master_key, renditions = await upload_hls(store, video_id, videos.clip, tmp_root)
    await videos.succeed(video_id, master_key=master_key, renditions=renditions, source_size=1)
    await videos.wait_for_status(video_id, "online")
    resp = await api.client.get(f"/api/v1/videos/{video_id}")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_hls_plays_with_signed_urls(
    api: Api, user: User, online_video: dict[str, Any], http: aiohttp.ClientSession
) -> None:
    video = online_video
    assert [s["quality"] for s in video["sources"]] == ["240p", "120p"]

    # A real HLS client: master → variants → every segment, all with short-lived signatures.
    probe = await asyncio.to_thread(ffprobe, video["playback_url"])
    assert float(probe["format"]["duration"]) > 1.5
    assert {s["codec_type"] for s in probe["streams"]} >= {"video", "audio"}
    for source in video["sources"]:
        probe = await asyncio.to_thread(ffprobe, source["url"])
        heights = {s.get("height") for s in probe["streams"] if s["codec_type"] == "video"}
        assert heights == {source["height"]}

    async with http.get(video["playback_url"]) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/vnd.apple.mpegurl"
        master = m3u8.loads(await resp.text())
    assert master.is_variant
    variant_urls = [p.uri for p in master.playlists]
    assert variant_urls == [s["url"] for s in video["sources"]]

    async with http.get(variant_urls[0]) as resp:
        variant = m3u8.loads(await resp.text())
    assert len(variant.segments) >= 2
    segment_url = variant.segments[0].uri
    s3_endpoint = str(api.settings.s3.presign_endpoint)
    # Segment bytes come from S3 directly, never through the API.
    assert segment_url.startswith(s3_endpoint) and "X-Amz-Signature" in segment_url
    async with http.get(segment_url) as resp:
        assert resp.status == 200
        assert (await resp.read())[:1] == b"\x47"  # MPEG-TS sync byte
    async with http.get(segment_url.split("?")[0]) as resp:
        assert resp.status == 403  # the bucket is private


async def test_playback_token_checks(
    api: Api, user: User, online_video: dict[str, Any], http: aiohttp.ClientSession
) -> None:
    video = online_video
    base = f"/api/v1/videos/{video['id']}/hls"
    auth = api.settings.auth
    other = issue_playback_token(auth, video["id"] + 1000, 60).token
    expired = issue_playback_token(auth, video["id"], -10).token
    access = issue_access_token(auth, user.id).token
    for query, status in (
        ("", 401),
        ("?token=garbage", 401),
        (f"?token={expired}", 401),
        (f"?token={access}", 401),  # an access token is not a playback token
        (f"?token={other}", 404),  # a token for another video
    ):
        for name in ("master", "240p"):
            resp = await api.client.get(f"{base}/{name}.m3u8{query}")
            assert resp.status == status, (name, query)
            assert (await resp.json())["error"]["code"] in ("unauthorized", "not_found")
    good = issue_playback_token(auth, video["id"], 60).token
    resp = await api.client.get(f"{base}/999p.m3u8?token={good}")
    assert resp.status == 404


async def test_unfinished_video_has_no_playback(api: Api, user: User, videos: Videos) -> None:
    video_id = await videos.uploaded(user)
    token = issue_playback_token(api.settings.auth, video_id, 60).token
    resp = await api.client.get(f"/api/v1/videos/{video_id}/hls/master.m3u8?token={token}")
    assert resp.status == 404
