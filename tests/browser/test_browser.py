"""What a web page does, done by Chromium: play playback_url from another origin with hls.js,
follow events_url with EventSource, and use the project's own page from sign-up to playback."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from playwright.async_api import Page, expect

from harness.client import ApiClient
from tests.media import make_video
from tests.platform_fixtures import Platform

# Generous: two cores shared with the worker's ffmpeg and other test runs.
WITHIN_MS = 120_000


async def _online(client: ApiClient, path: Path) -> dict[str, Any]:
    video_id = await client.upload(path)
    await client.complete(video_id)
    video = await client.wait_final(video_id)
    assert video["status"] == "online", video.get("error")
    return video


async def test_a_page_on_another_origin_plays_playback_url_with_hlsjs(
    client: ApiClient, page: Page, other_origin: str, tmp_path: Path
) -> None:
    clip = await asyncio.to_thread(
        make_video, tmp_path / "cross.mp4", width=640, height=360, duration=6
    )
    video = await _online(client, clip)
    await page.goto(f"{other_origin}/player.html")
    await page.evaluate("url => window.play(url)", video["playback_url"])
    await page.wait_for_function(
        "() => document.getElementById('video').currentTime > 3 "
        "|| window.errors.some(e => e.includes('fatal'))",
        timeout=WITHIN_MS,
    )
    errors = await page.evaluate("window.errors")
    assert not [e for e in errors if "fatal" in e], errors
    assert await page.evaluate("document.getElementById('video').currentTime") > 3
    # Both renditions were offered to the player.
    heights = await page.evaluate("window.hls.levels.map(l => l.height)")
    assert sorted(heights) == [240, 360]


async def test_an_event_source_on_another_origin_receives_the_final_online_event(
    client: ApiClient, page: Page, other_origin: str, tmp_path: Path
) -> None:
    clip = await asyncio.to_thread(make_video, tmp_path / "live.mp4", duration=2)
    video_id = await client.upload(clip)
    await client.complete(video_id)
    video = await client.call("GET", f"/api/v1/videos/{video_id}", 200)
    await page.goto(f"{other_origin}/events.html")
    await page.evaluate("url => window.follow(url)", video["events_url"])
    await page.wait_for_function(
        "() => window.received.some(e => e.event === 'online' || e.event === 'failed')",
        timeout=WITHIN_MS,
    )
    received = await page.evaluate("window.received")
    final = received[-1]
    assert final["event"] == "online", received
    assert final["id"] == "online"
    assert final["data"]["playback_url"].startswith(f"{client.base_url}/api/v1/videos/{video_id}/")
    assert final["data"]["cover_url"]
    assert not [e for e in received if e["event"] == "error"], received


async def test_the_web_page_uploads_shows_progress_and_cover_and_plays(
    platform: Platform, page: Page, tmp_path: Path
) -> None:
    clip = await asyncio.to_thread(
        make_video, tmp_path / "garden walk.mp4", width=640, height=360, duration=5
    )
    await page.goto(f"{platform.api}/")  # redirects to the page
    await page.click("#auth-switch")
    await page.fill("#auth-nickname", "browser")
    await page.fill("#auth-email", f"page-{uuid.uuid4().hex[:8]}@example.com")
    await page.fill("#auth-password", "password-123")
    await page.click("#auth-submit")
    await expect(page.locator("#workspace")).to_be_visible()
    await expect(page.locator("#videos-empty")).to_be_visible()

    # Record every upload progress value the page shows.
    await page.evaluate(
        """() => {
            window.uploadProgress = [];
            const bar = document.getElementById('upload-progress');
            new MutationObserver(() => window.uploadProgress.push(bar.value))
                .observe(bar, {attributes: true});
            const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value');
            Object.defineProperty(bar, 'value', {
                get() { return set.get.call(this); },
                set(v) { set.set.call(this, v); window.uploadProgress.push(v); },
            });
        }"""
    )
    await page.set_input_files("#file-input", str(clip))
    await expect(page.locator("#file-label")).to_contain_text("garden walk.mp4")
    await page.click("#upload-button")

    await expect(page.locator("#upload-percent")).to_have_text("100 %", timeout=WITHIN_MS)
    progress = await page.evaluate("window.uploadProgress")
    assert progress[0] == 0 and progress[-1] == 100, progress
    await expect(page.locator("#stage-title")).to_have_text("garden walk")

    # The cover arrives (live, through the events stream) and loads from the bucket.
    await page.wait_for_function(
        "() => document.getElementById('cover').naturalWidth > 0", timeout=WITHIN_MS
    )
    await expect(page.locator("#status")).to_have_text("online", timeout=WITHIN_MS)
    await page.wait_for_function(
        "() => document.getElementById('player').currentTime > 2", timeout=WITHIN_MS
    )
    options = await page.locator("#quality option").all_text_contents()
    assert options == ["Auto", "360p", "240p"]
    await page.select_option("#quality", label="240p")
    await expect(page.locator("#level-info")).to_have_text("playing 240p", timeout=WITHIN_MS)

    # My videos lists it, online, with its cover.
    tile = page.locator("#videos .tile").first
    await expect(tile).to_contain_text("garden walk")
    await expect(tile.locator(".pill")).to_have_text("online", timeout=WITHIN_MS)
