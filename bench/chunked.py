"""Split-and-stitch (rows 7): a long clip complete → online as one job, then chunked on one
worker and on two, each worker's ffmpeg on one thread so two workers fit two cores; then per
rung the PSNR of the chunked and of the one-job output against the source, and the stream
durations.

``python -m bench.chunked`` runs this scenario alone; ``BENCH_CHUNKED_SECONDS`` and
``BENCH_CHUNKED_SIZE`` shrink the clip for a quick check (defaults: 180 s, 1920x1080);
``BENCH_CHUNKED_QUALITY=0`` measures only the two chunked runs and their ratio (the one-job
run and the PSNR comparison take about as long again).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from bench import media
from bench.console import BenchError, run_scenario, say
from bench.flow import Client
from bench.report import Row, table, verdict, write_json
from bench.stack import OUT, READY_TIMEOUT, Stack, stop_service

RATIO_TARGET = 0.55
PSNR_TARGET_DB = 0.5
CHUNK_SECONDS = 30
FPS = 30


def clip_seconds() -> int:
    return int(os.environ.get("BENCH_CHUNKED_SECONDS", "180"))


def with_quality() -> bool:
    return os.environ.get("BENCH_CHUNKED_QUALITY", "1") != "0"


def clip_size() -> str:
    return os.environ.get("BENCH_CHUNKED_SIZE", "1920x1080")


def worker_env(chunked: bool) -> dict[str, str]:
    # 0 turns chunking off whatever the clip's length (the default threshold is 5 min).
    env = {
        "VIDEO_WORKER__FFMPEG_THREADS": "1",
        "VIDEO_WORKER__CHUNK_MIN_DURATION": str(2 * CHUNK_SECONDS if chunked else 0),
    }
    if chunked:
        env["VIDEO_WORKER__CHUNK_SECONDS"] = str(CHUNK_SECONDS)
    return env


async def online_after(
    stack: Stack, client: Client, clip: Path, workers: int, chunked: bool, label: str
) -> tuple[int, float]:
    running = [stack.worker_service(f"{label}-{n}", **worker_env(chunked)) for n in range(workers)]
    try:
        # Started inside the try: the stack does not know these workers, so one that never
        # gets ready must not leave the others running after the bench.
        for worker in running:
            worker.start()
        for worker in running:
            await worker.wait_ready(READY_TIMEOUT)
        video_id = await client.upload(clip)
        sent = await client.complete_timed(video_id)
        watch = await client.watch(video_id, sent, within=7200)
        assert watch.online is not None
        say(f"  {label}: online after {watch.online:.1f} s")
        return video_id, watch.online
    finally:
        for worker in running:
            await stop_service(worker)


async def _run(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{args[0]} failed: {' | '.join(tail)}")
    return stdout.decode() + stderr.decode()


async def psnr(rendition_url: str, source: Path) -> float:
    """Average PSNR (dB) of a rendition against the source scaled to the rendition's size."""
    out = await _run(
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-i", rendition_url, "-i", str(source),
        "-lavfi", "[1:v][0:v]scale2ref[ref][dist];[dist][ref]psnr", "-f", "null", "-",
    )  # fmt: skip
    found = re.findall(r"average:([0-9.]+|inf)", out)
    if not found:
        raise BenchError("ffmpeg psnr printed no average")
    return float("inf") if found[-1] == "inf" else float(found[-1])


async def stream_duration(url: str) -> float:
    out = await _run(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", url
    )
    return float(json.loads(out[: out.rindex("}") + 1])["format"]["duration"])


async def measure(stack: Stack, session: aiohttp.ClientSession) -> tuple[list[Row], Any]:
    seconds, size = clip_seconds(), clip_size()
    clip = await media.make_clip(OUT / f"clip-{size}-{seconds}s.mp4", seconds, size, FPS)
    client = Client(session, stack.api_url)
    await client.sign_up()
    say(f"chunked: {seconds} s {size} clip, chunks of {CHUNK_SECONDS} s, ffmpeg threads=1")
    compare = with_quality()
    if compare:
        single_id, single = await online_after(stack, client, clip, 1, False, "one-job")
    _, one = await online_after(stack, client, clip, 1, True, "chunked-1-worker")
    chunked_id, two = await online_after(stack, client, clip, 2, True, "chunked-2-workers")
    ratio = two / one
    ratio_row = Row(
        "7. chunked 2 workers / 1 worker",
        f"{ratio:.3f}",
        f"<= {RATIO_TARGET}",
        verdict(ratio <= RATIO_TARGET),
    )
    timing = {
        "clip_seconds": seconds, "clip_size": size, "chunk_seconds": CHUNK_SECONDS,
        "online_chunked_1_worker_s": one, "online_chunked_2_workers_s": two, "ratio": ratio,
    }  # fmt: skip
    if not compare:
        return [
            Row("7. chunked, 1 worker", f"{one:.1f} s", "-", "INFO"),
            Row("7. chunked, 2 workers", f"{two:.1f} s", "-", "INFO"),
            ratio_row,
        ], timing

    single_sources = {s["quality"]: s["url"] for s in (await client.video(single_id))["sources"]}
    chunked_video = await client.video(chunked_id)
    chunked_sources = {s["quality"]: s["url"] for s in chunked_video["sources"]}
    per_rung: dict[str, dict[str, float]] = {}
    for quality, url in chunked_sources.items():
        if quality not in single_sources:
            raise BenchError(f"the one-job output has no {quality} rendition")
        say(f"  PSNR and duration of {quality}")
        reference = single_sources[quality]
        per_rung[quality] = {
            "psnr_chunked_db": await psnr(url, clip),
            "psnr_one_job_db": await psnr(reference, clip),
            "duration_chunked_s": await stream_duration(url),
            "duration_one_job_s": await stream_duration(reference),
        }
    rows = [
        Row(f"7. one job, {seconds} s {size}, 1 worker", f"{single:.1f} s", "-", "INFO"),
        Row("7. chunked, 1 worker", f"{one:.1f} s", "-", "INFO"),
        Row("7. chunked, 2 workers", f"{two:.1f} s", "-", "INFO"),
        ratio_row,
    ]
    for quality, m in per_rung.items():
        # Both outputs against the source: the chunked encode may lose at most
        # PSNR_TARGET_DB per rung to the one-job encode.
        loss = m["psnr_one_job_db"] - m["psnr_chunked_db"]
        rows.append(Row(f"7. {quality} PSNR one job - chunked (vs source)",
                        f"{loss:+.2f} dB ({m['psnr_chunked_db']:.1f} dB)",
                        f"<= {PSNR_TARGET_DB} dB", verdict(loss <= PSNR_TARGET_DB)))  # fmt: skip
        diff = m["duration_chunked_s"] - m["duration_one_job_s"]
        rows.append(Row(f"7. {quality} duration chunked - one job", f"{diff:+.3f} s",
                        f"|d| <= {seconds // CHUNK_SECONDS}/{FPS} s",
                        verdict(abs(diff) <= (seconds // CHUNK_SECONDS) / FPS)))  # fmt: skip
    return rows, {**timing, "online_one_job_s": single, "per_rung": per_rung}


async def run_alone() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    async with Stack() as stack, aiohttp.ClientSession() as session:
        rows, raw = await measure(stack, session)
    write_json(OUT / "results-chunked.json", {}, {"chunked": raw}, rows)
    print(table(rows))
    print(f"chunked scenario took {time.monotonic() - started:.0f} s")


def main() -> int:
    # No options (the environment sizes the clip), but --help must not start the scenario.
    argparse.ArgumentParser(
        prog="python -m bench.chunked",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args()
    return run_scenario(run_alone)


if __name__ == "__main__":
    raise SystemExit(main())
