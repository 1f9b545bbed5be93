"""What a long video's playback costs the API: the variant playlist of a 6 h video (3 600
segments, every one a presigned S3 URL) against a 20 s one (4 segments), through the real API
process, and how long its event loop stalls while it signs.

    .venv/bin/python -m bench.playlist

Two short clips are transcoded to one 240p rung; the second one's variant playlist is then
replaced in S3 by a 3 600-segment playlist of the same layout before anyone has asked for it,
so the API signs it from scratch (a cold request) and then serves it again (warm requests,
the signed-playlist cache). Meanwhile a probe requests ``/healthz`` every 10 ms: its slowest
answer is how long the event loop was not free.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import aiohttp
import structlog

from bench import media
from bench.console import BenchError, run_scenario, say
from bench.flow import Client
from bench.report import Row, table, verdict
from bench.stack import OUT, Stack
from shared.keys import rendition_playlist_key
from shared.s3 import s3_client

LONG_SEGMENTS = 3600  # 6 h of 6 s segments
WARM_REQUESTS = 20
PROBE_INTERVAL = 0.01
WARM_RATIO_TARGET = 3.0  # a warm 6 h playlist costs at most this many 20 s ones
STALL_TARGET = 0.25  # seconds the event loop may be busy at once while signing
RUNG = 240
T = TypeVar("T")


def long_playlist(segments: int) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:6",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD"]  # fmt: skip
    for i in range(segments):
        lines += ["#EXTINF:6.000000,", f"{RUNG}p_{i:05d}.ts"]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


async def _timed(awaitable: Awaitable[T]) -> tuple[float, T]:
    started = time.monotonic()
    result = await awaitable
    return time.monotonic() - started, result


async def _get(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        if resp.status != 200:
            raise BenchError(f"GET playlist: {resp.status} {(await resp.text())[:200]}")
        return await resp.text()


async def _slowest_health(http: aiohttp.ClientSession, api: str, stop: asyncio.Event) -> float:
    """Request /healthz back to back until ``stop``; the slowest answer in seconds."""
    slowest = 0.0
    while not stop.is_set():
        took, _ = await _timed(_get(http, f"{api}/healthz"))
        slowest = max(slowest, took)
        await asyncio.sleep(PROBE_INTERVAL)
    return slowest


async def _online_variant(client: Client, clip: Path) -> tuple[int, str]:
    video_id = await client.upload(clip)
    await client.complete(video_id)
    video = await client.wait_final(video_id)
    if video["status"] != "online":
        raise BenchError(f"video {video_id} failed: {video.get('error')}")
    return video_id, str(video["sources"][0]["url"])


async def _cold_and_warm(http: aiohttp.ClientSession, api: str, url: str) -> dict[str, Any]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_slowest_health(http, api, stop))
    await asyncio.sleep(0.2)  # the probe's own baseline first
    cold, text = await _timed(_get(http, url))
    stop.set()
    stall = await probe
    warm = [(await _timed(_get(http, url)))[0] for _ in range(WARM_REQUESTS)]
    return {
        "segments": text.count("#EXTINF"),
        "cold_s": cold,
        "warm_median_s": median(warm),
        "slowest_healthz_during_cold_s": stall,
    }


async def measure(stack: Stack, client: Client, http: aiohttp.ClientSession) -> dict[str, Any]:
    """Both playlists through ``stack``'s API (a worker must be running)."""
    clip = OUT / "clip-240p-20s.mp4"
    if media.size_of(clip) == 0:
        await media.ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=25:duration=20",
            "-f", "lavfi", "-i", "sine=duration=20", "-c:v", "libx264", "-preset", "veryfast",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip),
        )  # fmt: skip
    say("playback cost: two 20 s videos online, then one's playlist becomes 6 h long")
    _, short_url = await _online_variant(client, clip)
    long_id, long_url = await _online_variant(client, clip)
    async with s3_client(stack.s3_settings) as s3:
        await s3.put_object(
            Bucket=stack.bucket,
            Key=rendition_playlist_key(long_id, RUNG),
            Body=long_playlist(LONG_SEGMENTS).encode(),
            ContentType="application/vnd.apple.mpegurl",
        )
    short = await _cold_and_warm(http, stack.api_url, short_url)
    long = await _cold_and_warm(http, stack.api_url, long_url)
    if long["segments"] != LONG_SEGMENTS:
        raise BenchError(f"the long playlist has {long['segments']} segments")
    say(
        f"  20 s: cold {short['cold_s'] * 1e3:.0f} ms, warm {short['warm_median_s'] * 1e3:.1f} ms;"
        f" 6 h: cold {long['cold_s'] * 1e3:.0f} ms, warm {long['warm_median_s'] * 1e3:.1f} ms, "
        f"slowest /healthz while signing {long['slowest_healthz_during_cold_s'] * 1e3:.0f} ms"
    )
    return {"short": short, "long": long}


def rows(result: dict[str, Any], number: int) -> list[Row]:
    short, long = result["short"], result["long"]
    warm_ratio = long["warm_median_s"] / short["warm_median_s"]
    stall = long["slowest_healthz_during_cold_s"]
    return [
        Row(f"{number}. 6 h playlist ({LONG_SEGMENTS} segments), first request (signing)",
            f"{long['cold_s']:.2f} s", "-", "INFO"),
        Row(f"{number}. 6 h / 20 s playlist, later requests (median of {WARM_REQUESTS})",
            f"{warm_ratio:.2f}x ({long['warm_median_s'] * 1e3:.1f} ms)",
            f"<= {WARM_RATIO_TARGET:.0f}x", verdict(warm_ratio <= WARM_RATIO_TARGET)),
        Row(f"{number}. slowest /healthz while the 6 h playlist is signed",
            f"{stall * 1e3:.0f} ms", f"<= {STALL_TARGET * 1e3:.0f} ms",
            verdict(stall <= STALL_TARGET)),
    ]  # fmt: skip


async def run() -> list[Row]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    OUT.mkdir(parents=True, exist_ok=True)
    async with Stack() as stack:
        await stack.start_worker(VIDEO_WORKER__RUNGS=f"[{RUNG}]")
        async with aiohttp.ClientSession() as http:
            client = Client(http, stack.api_url)
            await client.sign_up("bench")
            result = rows(await measure(stack, client, http), 8)
    print(table(result))
    return result


def main() -> int:
    return run_scenario(run)


if __name__ == "__main__":
    raise SystemExit(main())
