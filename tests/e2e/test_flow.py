"""End to end through HTTP: the API and a worker as real processes, real curl, real ffmpeg."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aiohttp
import m3u8
import pytest

from harness.client import ApiClient
from harness.processes import REPO_ROOT, api_command, worker_command
from tests.media import ffprobe, make_video


async def _fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


# A few seconds of work when the machine is idle; a generous bound for a busy one.
FINAL_WITHIN = 240.0


def env_without_video_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_")}


async def test_upload_becomes_online_and_plays_from_the_private_bucket(
    client: ApiClient, tmp_path: Path
) -> None:
    source = await asyncio.to_thread(
        make_video, tmp_path / "holiday clip.mp4", width=640, height=360, duration=4
    )
    video_id = await client.upload(source)
    await client.complete(video_id)
    video = await client.wait_final(video_id, FINAL_WITHIN)

    assert video["status"] == "online", video.get("error")
    assert video["duration"] == pytest.approx(4, abs=0.5)
    assert (video["width"], video["height"]) == (640, 360)
    assert sorted(s["quality"] for s in video["sources"]) == ["240p", "360p"]
    assert all(s["format"] == "HLS" for s in video["sources"])

    status, content_type, cover = await _fetch(video["cover_url"])
    assert status == 200 and cover[:2] == b"\xff\xd8", content_type  # a JPEG

    # A player's path: master -> variants -> every segment, each with a short-lived signature.
    status, _, master_body = await _fetch(video["playback_url"])
    assert status == 200
    master = m3u8.loads(master_body.decode(), uri=video["playback_url"])
    assert master.is_variant and len(master.playlists) == 2
    for variant in master.playlists:
        status, _, body = await _fetch(variant.absolute_uri)
        assert status == 200, variant.absolute_uri
        playlist = m3u8.loads(body.decode(), uri=variant.absolute_uri)
        assert playlist.segments
        for segment in playlist.segments:
            status, _, data = await _fetch(segment.absolute_uri)
            assert status == 200 and data[:1] == b"\x47", segment.absolute_uri  # MPEG-TS sync

    probed = await asyncio.to_thread(ffprobe, video["playback_url"])
    kinds = {s["codec_type"] for s in probed["streams"]}
    assert {"video", "audio"} <= kinds

    # Unsigned access to the bucket is refused: it really is private.
    s3_url = master.playlists[0].absolute_uri
    status, _, _ = await _fetch(s3_url.split("?", 1)[0])
    assert status in (401, 403, 404)


async def test_a_text_file_ends_failed_with_a_reason(client: ApiClient, tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 100)
    video_id = await client.upload(fake)
    await client.complete(video_id)
    video = await client.wait_final(video_id, FINAL_WITHIN)
    assert video["status"] == "failed"
    assert video["error"], "a failed video says why"
    assert "Traceback" not in video["error"]


@pytest.mark.parametrize("command", [api_command(), worker_command()], ids=["api", "worker"])
def test_an_invalid_setting_stops_start_up_with_one_line(command: list[str]) -> None:
    env = {**env_without_video_settings(), "VIDEO_S3__ENDPOINT_URL": "not a url"}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("invalid setting s3.endpoint_url:")
