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
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

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


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    expect: int,
    **kwargs: Any,
) -> dict[str, Any]:
    async with session.request(method, url, **kwargs) as response:
        body = await response.json(content_type=None)
        if response.status != expect:
            raise DemoError(f"{method} {url} -> {response.status}: {json.dumps(body)}")
        result: dict[str, Any] = body
        return result


def upload_with_curl(path: Path, upload_url: str) -> None:
    # Exactly what a client of the original service runs.
    done = subprocess.run(
        ["curl", "--fail-with-body", "--silent", "--show-error", "-T", str(path), upload_url],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise DemoError(f"upload failed: {done.stderr.strip()} {done.stdout.strip()}")


async def wait_until_final(
    session: aiohttp.ClientSession, api: str, video_id: int, headers: dict[str, str]
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    with tqdm(total=100, desc="transcoding", unit="%", bar_format="{l_bar}{bar}| {n:.0f}%") as bar:
        while True:
            video = await call(
                session, "GET", f"{api}/api/v1/videos/{video_id}", expect=200, headers=headers
            )
            progress = 100.0 if video["status"] == "online" else float(video.get("progress") or 0)
            bar.update(max(0.0, progress - bar.n))
            bar.set_postfix_str(video["status"])
            if video["status"] in ("online", "failed"):
                return video
            if loop.time() > deadline:
                raise DemoError(f"video {video_id} still {video['status']} after {TIMEOUT:.0f} s")
            await asyncio.sleep(POLL_INTERVAL)


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
    email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    password = "demo-password-123"
    async with aiohttp.ClientSession() as session:
        await call(
            session, "POST", f"{api}/api/v1/users/register", expect=201,
            json={"nickname": "demo", "email": email, "password": password},
        )  # fmt: skip
        login = await call(
            session, "POST", f"{api}/api/v1/users/login", expect=200,
            json={"email": email, "password": password},
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {login['token']}"}
        print(f"registered and logged in as {email}")

        initiated = await call(
            session, "POST", f"{api}/api/v1/videos/upload/initiate", expect=201, headers=headers,
            json={"file_name": source.name, "title": "Demo video", "size": size},
        )  # fmt: skip
        video_id = int(initiated["video_id"])
        print(f"video {video_id}: uploading {source.name} ({size} bytes)")
        await asyncio.to_thread(upload_with_curl, source, initiated["upload_url"])

        await call(
            session, "POST", f"{api}/api/v1/videos/upload/complete", expect=202,
            headers=headers, json={"video_id": video_id},
        )  # fmt: skip
        video = await wait_until_final(session, api, video_id, headers)

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
    except (DemoError, aiohttp.ClientError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
