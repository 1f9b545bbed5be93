"""The seed flow through the API and worker containers (``make test-containers``).

register -> login -> initiate -> PUT to the presigned URL -> complete -> cover -> transcoding
-> (``--on-transcoding`` runs: scripts/containers.sh stops the busy worker, starts another)
-> online -> the playback URL plays (ffprobe follows master -> variant -> segments).

Exits non-zero with one line saying what went wrong; prints one line per step otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

POLL_INTERVAL = 0.5


class FlowError(Exception):
    pass


def make_clip(path: Path, seconds: int) -> None:
    # 720p, 4 rungs: long enough that the transcode is still running when the first worker
    # is stopped (the flow stops it as soon as progress is reported), cheap enough for CI.
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


async def call(
    session: aiohttp.ClientSession, method: str, url: str, *, expect: int, **kwargs: Any
) -> dict[str, Any]:
    async with session.request(method, url, **kwargs) as response:
        body = await response.json(content_type=None)
        if response.status != expect:
            raise FlowError(f"{method} {url} -> {response.status}: {json.dumps(body)}")
        result: dict[str, Any] = body
        return result


async def flow(api: str, clip: bytes, on_transcoding: str | None, limit: float) -> dict[str, Any]:
    """Drive one video to a final state; returns the video as the API shows it."""
    email = f"ctr-{uuid.uuid4().hex[:8]}@example.com"
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as session:
        await call(
            session, "POST", f"{api}/api/v1/users/register", expect=201,
            json={"nickname": "ctr", "email": email, "password": "container-flow-123"},
        )  # fmt: skip
        login = await call(
            session, "POST", f"{api}/api/v1/users/login", expect=200,
            json={"email": email, "password": "container-flow-123"},
        )  # fmt: skip
        headers = {"Authorization": f"Bearer {login['token']}"}
        print("flow: registered and logged in")
        initiated = await call(
            session, "POST", f"{api}/api/v1/videos/upload/initiate", expect=201,
            headers=headers, json={"file_name": "flow.mp4", "size": len(clip)},
        )  # fmt: skip
        video_id = int(initiated["video_id"])
        async with session.put(initiated["upload_url"], data=clip) as put:
            if put.status != 200:
                raise FlowError(f"upload PUT -> {put.status}: {await put.text()}")
        await call(
            session, "POST", f"{api}/api/v1/videos/upload/complete", expect=202,
            headers=headers, json={"video_id": video_id},
        )  # fmt: skip
        print(f"flow: video {video_id} uploaded and completed")

        hook_ran = on_transcoding is None
        seen_cover = False
        while True:
            video = await call(
                session, "GET", f"{api}/api/v1/videos/{video_id}", expect=200, headers=headers
            )
            if video.get("cover_url") and not seen_cover:
                seen_cover = True
                print(f"flow: cover ready ({video['status']})")
            if video["status"] in ("online", "failed"):
                break
            if not hook_ran and video["status"] == "transcoding" and (video["progress"] or 0) > 0:
                print(f"flow: transcoding at {video['progress']:.0f} %, running the hook")
                assert on_transcoding is not None
                await asyncio.to_thread(subprocess.run, ["bash", "-c", on_transcoding], check=True)
                hook_ran = True
            if time.monotonic() > deadline:
                raise FlowError(f"video {video_id} still {video['status']} after {limit:.0f} s")
            await asyncio.sleep(POLL_INTERVAL)
    if video["status"] != "online":
        raise FlowError(f"video {video_id} failed: {video.get('error')}")
    if not hook_ran:
        raise FlowError("the video went online before the transcode could be interrupted")
    if not seen_cover:
        raise FlowError("online without a cover_url")
    return video


def check_playback(video: dict[str, Any]) -> None:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_entries",
         "stream=codec_type,codec_name,width,height", video["playback_url"]],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        raise FlowError(f"ffprobe could not open the playback URL: {probe.stderr.strip()}")
    streams = json.loads(probe.stdout)["streams"]
    if not any(s["codec_type"] == "video" and s["codec_name"] == "h264" for s in streams):
        raise FlowError(f"playback has no h264 video stream: {streams}")
    print(f"flow: video {video['id']} online, {len(video['sources'])} renditions, playback plays")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--api", required=True)
    parser.add_argument("--seconds", type=int, default=30, help="length of the generated clip")
    parser.add_argument("--on-transcoding", help="shell command run once the transcode runs")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            clip = Path(tmp) / "flow.mp4"
            make_clip(clip, args.seconds)
            video = asyncio.run(
                flow(args.api.rstrip("/"), clip.read_bytes(), args.on_transcoding, args.timeout)
            )
        check_playback(video)
    except (FlowError, aiohttp.ClientError, subprocess.CalledProcessError) as exc:
        print(f"flow failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
