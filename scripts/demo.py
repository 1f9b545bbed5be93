"""The original service's end-to-end flow, against a running stack (``make demo``).

register -> login -> initiate -> ``curl -T`` the file to the presigned URL -> complete ->
poll until online (progress bar) -> open ``playback_url`` with ffprobe -> print the URLs.

Usage: python scripts/demo.py [VIDEO_FILE] [--api http://localhost:8000]
Without a file, a 10 s 720p clip with audio is generated with ffmpeg's lavfi sources.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from harness.client import ApiClient
from harness.errors import HarnessError

POLL_INTERVAL = 0.5
TIMEOUT = 600.0


class DemoError(Exception):
    pass


def generate_clip(path: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=10",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=10",
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


def probe_playback(url: str) -> dict[str, Any]:
    # The player's view: ffprobe follows master -> variant -> segments, all signed.
    done = subprocess.run(
        [
            "ffprobe", "-v", "error", "-print_format", "json", "-show_format",
            "-show_entries", "stream=codec_type,codec_name,width,height", url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise DemoError(f"ffprobe could not open the playback URL: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def demo(api: str, source: Path, size: int) -> None:
    async with aiohttp.ClientSession() as session:
        client = ApiClient(session, api)
        account = await client.sign_up("demo")
        print(f"registered and logged in as {account.email}")
        video_id = await client.upload(source, title="Demo video", size=size)
        print(f"video {video_id}: uploaded {source.name} ({size} bytes)")
        await client.complete(video_id)
        with tqdm(
            total=100, desc="transcoding", unit="%", bar_format="{l_bar}{bar}| {n:.0f}%"
        ) as bar:

            def show(video: dict[str, Any]) -> None:
                done = video["status"] == "online"
                progress = 100.0 if done else float(video.get("progress") or 0)
                bar.update(max(0.0, progress - bar.n))
                bar.set_postfix_str(video["status"])

            video = await client.wait_final(video_id, TIMEOUT, POLL_INTERVAL, on_poll=show)

    if video["status"] != "online":
        raise DemoError(f"video {video_id} failed: {video.get('error')}")
    probe = await asyncio.to_thread(probe_playback, video["playback_url"])
    streams = ", ".join(
        f"{s['codec_type']} {s['codec_name']}"
        + (f" {s['width']}x{s['height']}" if s.get("width") else "")
        for s in probe["streams"]
    )
    print(
        f"video {video_id} is online: {video['duration']:.1f} s, {len(video['sources'])} renditions"
    )
    for source_entry in video["sources"]:
        print(f"  {source_entry['quality']:>6} {source_entry['format']} {source_entry['url']}")
    print(f"ffprobe of playback_url: format {probe['format']['format_name']}; {streams}")
    print(f"cover_url:    {video['cover_url']}")
    print(f"playback_url: {video['playback_url']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", nargs="?", type=Path, help="video to upload (default: generated)")
    parser.add_argument("--api", default="http://localhost:8000", help="API base URL")
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = args.file or generate_clip(Path(tmp) / "demo.mp4")
            asyncio.run(demo(args.api.rstrip("/"), source, source.stat().st_size))
    except (DemoError, HarnessError, aiohttp.ClientError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
