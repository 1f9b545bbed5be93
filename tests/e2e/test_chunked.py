"""A long upload through HTTP with chunking on (the platform's worker: chunks of 12 s from
20 s): it goes online once, its progress only rises, and it plays from signed URLs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import m3u8
import pytest

from harness.client import ApiClient
from tests.media import ffprobe, make_video

SECONDS = 30  # three chunks: 12 + 12 + 6


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, url
        return await response.text()


async def test_long_upload_goes_online_through_chunks(client: ApiClient, tmp_path: Path) -> None:
    source = await asyncio.to_thread(
        make_video, tmp_path / "long.mp4", width=640, height=360, duration=SECONDS
    )
    video_id = await client.upload(source)
    await client.complete(video_id)  # the harness client's upload does not complete
    seen: list[float] = []

    def record_progress(video: dict[str, Any]) -> None:
        if video["status"] == "transcoding":
            seen.append(float(video.get("progress") or 0))

    video = await client.wait_final(video_id, within=240, on_poll=record_progress)

    assert video["status"] == "online", video.get("error")
    assert seen == sorted(seen), "progress went backwards"
    assert video["duration"] == pytest.approx(SECONDS, abs=0.1)
    assert sorted(s["quality"] for s in video["sources"]) == ["240p", "360p"]

    master = m3u8.loads(await _text(video["playback_url"]), uri=video["playback_url"])
    for variant in master.playlists:
        playlist = m3u8.loads(await _text(variant.absolute_uri), uri=variant.absolute_uri)
        names = [s.uri.split("?", 1)[0].rsplit("/", 1)[-1] for s in playlist.segments]
        height = names[0].split("p_", 1)[0]
        assert names == [f"{height}p_{n:05d}.ts" for n in range(5)]
        assert sum(s.duration for s in playlist.segments) == pytest.approx(SECONDS, abs=0.12)
    probed = await asyncio.to_thread(ffprobe, video["playback_url"])
    assert float(probed["format"]["duration"]) == pytest.approx(SECONDS, abs=0.2)
    assert {"video", "audio"} <= {s["codec_type"] for s in probed["streams"]}
