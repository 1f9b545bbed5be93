"""What browsers and phones upload, through the project's page: a MediaRecorder WebM recorded
by Chromium itself (written live, so its header states no duration) and a rotated phone-style
MP4 both go online and play in the page."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.media import ffprobe, make_video
from tests.platform_fixtures import Platform

# Records 4 s of an animated canvas with MediaRecorder (VP8 in WebM, 500 ms timeslices, as a
# recording page does) and returns the file as base64.
RECORD_CANVAS = """async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 360;
  document.body.append(canvas);
  const ctx = canvas.getContext('2d');
  let t = 0;
  const timer = setInterval(() => {
    ctx.fillStyle = `hsl(${t * 7 % 360}, 70%, 50%)`; ctx.fillRect(0, 0, 640, 360);
    ctx.fillStyle = '#fff'; ctx.font = '48px sans-serif'; ctx.fillText(String(t++), 280, 200);
  }, 40);
  const recorder = new MediaRecorder(canvas.captureStream(25), {mimeType: 'video/webm;codecs=vp8'});
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start(500);
  await new Promise((resolve) => setTimeout(resolve, 4000));
  recorder.stop(); await stopped; clearInterval(timer); canvas.remove();
  const bytes = new Uint8Array(await new Blob(chunks, {type: 'video/webm'}).arrayBuffer());
  let s = ''; for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}"""


async def _upload_and_play(browser: Browser, api: str, upload: Path) -> None:
    """Sign up on a fresh page, upload ``upload`` through the page, wait for online, play."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = await context.new_page()
        await page.goto(f"{api}/")
        await page.click("#auth-switch")
        await page.fill("#auth-email", f"rec-{uuid.uuid4().hex[:8]}@example.com")
        await page.fill("#auth-password", "password-123")
        await page.click("#auth-submit")
        await expect(page.locator("#workspace")).to_be_visible()
        await page.set_input_files("#file-input", str(upload))
        await page.click("#upload-button")
        await expect(page.locator("#stage-title")).to_have_text(upload.stem, timeout=60_000)
        await expect(page.locator("#status")).to_have_text("online", timeout=240_000)
        # Plays in the page's hls.js player (a fresh page: no earlier video's clock).
        await page.wait_for_function(
            "() => document.getElementById('player').currentTime > 1.5", timeout=120_000
        )
    finally:
        await context.close()


async def test_a_mediarecorder_webm_and_a_phone_video_go_online_and_play_in_the_page(
    platform: Platform, browser: Browser, page: Page, tmp_path: Path
) -> None:
    await page.goto(f"{platform.api}/")
    recording = tmp_path / "recording.webm"
    recording.write_bytes(base64.b64decode(await page.evaluate(RECORD_CANVAS)))
    # The case this is about: the recorder's header carries no duration.
    probed = await asyncio.to_thread(ffprobe, recording)
    assert probed["format"].get("duration") in (None, "N/A")
    phone = await asyncio.to_thread(
        make_video, tmp_path / "phone.mp4", width=640, height=360, duration=4, rotate=90
    )
    for upload in (recording, phone):
        await _upload_and_play(browser, platform.api, upload)
