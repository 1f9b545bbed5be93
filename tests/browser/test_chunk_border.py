"""hls.js in Chromium plays a chunked video across its chunk borders without a stall (the
platform's worker chunks sources of 20 s and more into 12 s chunks, see tests/e2e)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import Page

from harness.client import ApiClient
from tests.media import make_video

WITHIN_MS = 120_000
BORDERS = (12, 24)  # a 30 s clip: chunks of 12 + 12 + 6 s


async def test_hlsjs_plays_across_chunk_borders_without_a_stall(
    client: ApiClient, page: Page, other_origin: str, tmp_path: Path
) -> None:
    clip = await asyncio.to_thread(
        make_video, tmp_path / "chunked.mp4", width=640, height=360, duration=30
    )
    video_id = await client.upload(clip)
    await client.complete(video_id)  # the harness client's upload does not complete
    video = await client.wait_final(video_id, within=240)
    assert video["status"] == "online", video.get("error")
    await page.goto(f"{other_origin}/player.html")
    await page.evaluate("url => window.play(url)", video["playback_url"])
    await page.evaluate(
        """() => {
            window.timedErrors = [];
            window.hls.on(Hls.Events.ERROR, (_, data) => window.timedErrors.push(
                [data.details, document.getElementById('video').currentTime]));
        }"""
    )
    await page.wait_for_function(
        "() => document.getElementById('video').currentTime > 0.5", timeout=WITHIN_MS
    )
    for border in BORDERS:
        # Seek 2 s before the border; once playing again, any 'waiting' is a stall.
        await page.evaluate(
            """border => {
                const v = document.getElementById('video');
                window.stalls = [];
                window.armedAfter = border - 1.5;
                if (!window.stallWatch) {
                    window.stallWatch = true;
                    v.addEventListener('waiting', () => {
                        if (v.currentTime > window.armedAfter) window.stalls.push(v.currentTime);
                    });
                }
                v.currentTime = border - 2;
            }""",
            border,
        )
        await page.wait_for_function(
            "border => document.getElementById('video').currentTime > border + 2.5",
            arg=border,
            timeout=WITHIN_MS,
        )
        assert await page.evaluate("window.stalls") == [], f"stalled at the {border} s border"
    errors = await page.evaluate("window.errors")
    assert not [e for e in errors if "fatal" in e], errors
    # hls.js reports buffer holes and stalls as non-fatal errors; none may come from a
    # border. (It skips a hole of a fraction of a second at the very start of every
    # stream, chunked or not: the first video frame comes after the first audio frame.)
    timed: list[tuple[str, float]] = await page.evaluate("window.timedErrors")
    near = [(d, t) for d, t in timed for b in BORDERS if b - 1.5 <= t <= b + 2.5]
    assert not near, timed
