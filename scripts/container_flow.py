"""The seed flow through the API and worker containers (``make test-containers``).

register -> login -> initiate -> ``curl -T`` to the presigned URL -> complete -> cover
-> transcoding -> (``--on-transcoding`` runs: scripts/containers.sh stops the busy worker,
starts another) -> online -> the playback URL plays (ffprobe follows master -> variant -> segments).

Exits non-zero with one line saying what went wrong; prints one line per step otherwise.
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

from harness.client import ApiClient
from harness.errors import HarnessError

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


async def check_hlsjs(session: aiohttp.ClientSession, api: str) -> None:
    """The page's player script is in the image (deploy/api.Dockerfile's web stage)."""
    async with session.get(f"{api}/app/vendor/hls/hls.min.js") as response:
        body = await response.read()
        kind = response.content_type
        if response.status != 200 or "javascript" not in kind or b"Hls" not in body:
            raise FlowError(f"GET /app/vendor/hls/hls.min.js -> {response.status} {kind}")
    print(f"flow: hls.js served ({len(body)} bytes, {kind})")


async def flow(
    api: str, clip: Path, size: int, on_transcoding: str | None, limit: float
) -> dict[str, Any]:
    """Drive one video to a final state; returns the video as the API shows it."""
    async with aiohttp.ClientSession() as session:
        await check_hlsjs(session, api)
        client = ApiClient(session, api)
        await client.sign_up("ctr")
        print("flow: registered and logged in")
        video_id = await client.upload(clip, size=size)
        await client.complete(video_id)
        print(f"flow: video {video_id} uploaded and completed")

        hook_ran = on_transcoding is None
        seen_cover = False

        def watch(video: dict[str, Any]) -> None:
            nonlocal hook_ran, seen_cover
            if video.get("cover_url") and not seen_cover:
                seen_cover = True
                print(f"flow: cover ready ({video['status']})")
            if not hook_ran and video["status"] == "transcoding" and (video["progress"] or 0) > 0:
                print(f"flow: transcoding at {video['progress']:.0f} %, running the hook")
                assert on_transcoding is not None
                # Blocking on purpose: polling resumes once the hook has swapped the workers.
                subprocess.run(["bash", "-c", on_transcoding], check=True)
                hook_ran = True

        video = await client.wait_final(video_id, limit, POLL_INTERVAL, on_poll=watch)
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
                flow(
                    args.api.rstrip("/"),
                    clip,
                    clip.stat().st_size,
                    args.on_transcoding,
                    args.timeout,
                )
            )
        check_playback(video)
    except (FlowError, HarnessError, aiohttp.ClientError, subprocess.CalledProcessError) as exc:
        print(f"flow failed: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
