"""The bench's steps in order, then the table."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from bench import chunked, ladder, media, playlist
from bench.console import elapsed, run_scenario, say
from bench.flow import Client, Watch
from bench.memory import check_is_worker, peak_rss_kib
from bench.report import Row, system_info, table, verdict, write_json
from bench.stack import OUT, Stack

BACKLOG = 2  # uploads completed ahead of the measured one
BIG_BYTES = 1_050_000_000
MEMORY_RUNGS = "[240]"  # memory depends on transfers, not on the ladder; keep encodes short
E2E_TARGET = 1.10
SPEEDUP_TARGET = 1.3
COVER_TARGET = 1.5
MEMORY_TARGET = 1.5


def job_summaries(log: Path, video_id: int) -> dict[str, Any]:
    """The worker's "job finished" line per job kind for a video (stage timings)."""
    found: dict[str, Any] = {}
    if not log.exists():
        return found
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and entry.get("event") == "job finished"
            and entry.get("video_id") == video_id
        ):
            found[str(entry.get("kind"))] = {
                k: entry.get(k) for k in ("outcome", "total", "timings", "speed", "source_size")
            }
    return found


async def e2e(stack: Stack, client: Client, clip: Path, raw: dict[str, Any]) -> Watch:
    say("end to end: upload, complete, poll until online (idle worker)")
    video_id = await client.upload(clip)
    load = os.getloadavg()[0]
    sent = await client.complete_timed(video_id)
    watch = await client.watch(video_id, sent)
    say(f"  cover after {watch.cover:.2f} s, online after {watch.online:.2f} s")
    assert stack.worker is not None
    raw["e2e"] = {
        "video_id": video_id,
        "load_at_complete": load,
        "cover_s": watch.cover,
        "online_s": watch.online,
        "worker_jobs": job_summaries(stack.worker.log, video_id),
    }
    return watch


async def backlog(stack: Stack, client: Client, clip: Path, raw: dict[str, Any]) -> Watch:
    say(f"cover behind a backlog: {BACKLOG} uploads completed first, then one more")
    queued = [await client.upload(clip) for _ in range(BACKLOG)]
    measured = await client.upload(clip)
    sent_at = {video_id: await client.complete_timed(video_id) for video_id in queued}
    # Their covers first (cheap), so the backlog left is transcodes only.
    for video_id in queued:
        await client.watch(video_id, sent_at[video_id], online=False)
    states = [(await client.video(v))["status"] for v in queued]
    pending = sum(1 for s in states if s != "online")
    sent = await client.complete_timed(measured)
    watch = await client.watch(measured, sent, online=False)
    say(f"  cover after {watch.cover:.2f} s with {pending} transcode(s) ahead ({states})")
    assert stack.worker is not None
    log = stack.worker.log
    # Discard the backlog (a few minutes of transcodes the bench does not need): stop the
    # worker, then drop the jobs it leaves queued.
    await stack.stop_worker()
    dropped = await stack.purge_jobs()
    say(f"  backlog discarded ({dropped} queued job(s) dropped)")
    raw["backlog"] = {
        "completed_ahead": BACKLOG,
        "transcodes_ahead_at_complete": pending,
        "states_at_complete": states,
        "cover_s": watch.cover,
        "jobs_dropped": dropped,
        "worker_jobs": {v: job_summaries(log, v) for v in [*queued, measured]},
    }
    return watch


async def worker_peak(
    stack: Stack, session: aiohttp.ClientSession, source: Path, label: str
) -> dict[str, Any]:
    worker = await stack.start_worker(f"worker-{label}", VIDEO_WORKER__RUNGS=MEMORY_RUNGS)
    check_is_worker(worker.pid)
    idle = peak_rss_kib(worker.pid)
    client = Client(session, stack.api_url)
    await client.sign_up("bench")
    size = media.size_of(source)
    say(f"memory ({label}): fresh worker pid {worker.pid}, source {size / 1e6:.0f} MB")
    started = time.monotonic()
    video_id = await client.upload(source)
    upload = time.monotonic() - started
    sent = await client.complete_timed(video_id)
    watch = await client.watch(video_id, sent)
    worker.check_alive()
    peak = peak_rss_kib(worker.pid)
    say(
        f"  upload {upload:.1f} s, online {watch.online:.1f} s after complete, "
        f"worker VmHWM {peak / 1024:.0f} MiB (idle {idle / 1024:.0f} MiB)"
    )
    result = {
        "source_bytes": size,
        "worker_pid": worker.pid,
        "vmhwm_idle_kib": idle,
        "vmhwm_kib": peak,
        "upload_s": upload,
        "online_s": watch.online,
        "worker_jobs": job_summaries(worker.log, video_id),
    }
    await stack.stop_worker()
    return result


async def run() -> list[Row]:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    OUT.mkdir(parents=True, exist_ok=True)
    system = system_info(await media.ffmpeg_version())
    raw: dict[str, Any] = {}
    rows: list[Row] = []
    big = OUT / "big-source.avi"
    async with Stack() as stack:
        clip = await media.make_clip(OUT / "clip-1080p30-20s.mp4")
        raw["clip_bytes"] = media.size_of(clip)

        # 1 and 2: no worker running yet, so the two cores are ffmpeg's alone.
        times = await ladder.measure(clip, stack.base.worker, OUT)
        raw["ladder"] = {
            "rungs": times.rungs,
            "one_process_runs": [asdict(r) for r in times.runs],
            "per_rung": {name: asdict(r) for name, r in times.per_rung.items()},
            "per_rung_total_wall_s": times.per_rung_wall,
            "per_rung_total_cpu_s": times.per_rung_cpu,
            "cover_command_alone": asdict(times.cover) if times.cover else None,
            "niceness": ladder.NICENESS,
        }
        best = times.best
        bare = best.wall
        speedup = times.per_rung_wall / bare
        rows.append(Row(f"1. bare ladder, one ffmpeg, {len(times.rungs)} rungs (best of "
                        f"{len(times.runs)})", f"{bare:.2f} s ({best.cpu:.0f} s CPU)",
                        "-", "INFO"))  # fmt: skip
        rows.append(Row("2. one process per rung, sequential",
                        f"{times.per_rung_wall:.2f} s ({times.per_rung_cpu:.0f} s CPU)",
                        "-", "INFO"))  # fmt: skip
        rows.append(Row("2. speed-up one process vs per rung", f"{speedup:.2f}x",
                        f">= {SPEEDUP_TARGET}x", verdict(speedup >= SPEEDUP_TARGET)))  # fmt: skip

        await stack.start_worker()
        async with aiohttp.ClientSession() as session:
            client = Client(session, stack.api_url)
            await client.sign_up("bench")
            watch = await e2e(stack, client, clip, raw)
            assert watch.online is not None
            ratio = watch.online / bare
            rows.append(Row("3. end to end complete -> online", f"{watch.online:.2f} s", "-",
                            "INFO"))  # fmt: skip
            rows.append(Row("3. end to end / bare ladder", f"{ratio:.3f}",
                            f"<= {E2E_TARGET}", verdict(ratio <= E2E_TARGET)))  # fmt: skip
            cover = watch.cover
            rows.append(Row("4. cover latency, idle worker (from run 3)",
                            "none" if cover is None else f"{cover:.2f} s",
                            f"<= {COVER_TARGET} s",
                            verdict(cover is not None and cover <= COVER_TARGET)))  # fmt: skip
            if times.cover is not None:
                rows.append(Row("4. (worker's cover command alone, no stack)",
                                f"{times.cover.wall:.2f} s", "-", "INFO"))  # fmt: skip

            behind = await backlog(stack, client, clip, raw)
            pending = raw["backlog"]["transcodes_ahead_at_complete"]
            rows.append(Row(f"5. cover latency, {pending} transcodes ahead (+ its own)",
                            "none" if behind.cover is None else f"{behind.cover:.2f} s",
                            f"<= {COVER_TARGET} s-ish",
                            verdict(behind.cover is not None
                                    and behind.cover <= COVER_TARGET)))  # fmt: skip

            small = await worker_peak(stack, session, clip, "small")
            try:
                await media.make_big(big, BIG_BYTES)
                large = await worker_peak(stack, session, big, "big")
            finally:
                big.unlink(missing_ok=True)
            raw["memory"] = {"rungs": MEMORY_RUNGS, "small": small, "big": large}
            size_ratio = large["source_bytes"] / small["source_bytes"]
            mem_ratio = large["vmhwm_kib"] / small["vmhwm_kib"]
            rows.append(Row(f"6. worker VmHWM, {small['source_bytes'] / 1e6:.0f} MB source",
                            f"{small['vmhwm_kib'] / 1024:.0f} MiB", "-", "INFO"))  # fmt: skip
            rows.append(Row(f"6. worker VmHWM, {large['source_bytes'] / 1e9:.2f} GB source",
                            f"{large['vmhwm_kib'] / 1024:.0f} MiB", "-", "INFO"))  # fmt: skip
            rows.append(Row(f"6. peak ratio big/small (source {size_ratio:.0f}x bigger)",
                            f"{mem_ratio:.2f}", f"<= {MEMORY_TARGET}",
                            verdict(mem_ratio <= MEMORY_TARGET)))  # fmt: skip

            chunk_rows, raw["chunked"] = await chunked.measure(stack, session)
            rows += chunk_rows

            # 8: playback of a long video costs the API little more than a short one's.
            await stack.start_worker("worker-playlist", VIDEO_WORKER__RUNGS=f"[{playlist.RUNG}]")
            raw["playlist"] = await playlist.measure(stack, client, session)
            rows.extend(playlist.rows(raw["playlist"], 8))
            await stack.stop_worker()

    raw["total_s"] = elapsed()
    loads = [r.load for r in times.runs] + [r.load for r in times.per_rung.values()]
    loads.append(raw["e2e"]["load_at_complete"])
    raw["max_load_seen"] = max(loads)
    write_json(OUT / "results.json", system, raw, rows)
    print()
    print(
        f"{system['date']}  {system['machine']}  {system['cpu_model']}  "
        f"nproc={system['nproc']}  {system['ffmpeg']}"
    )
    print(table(rows))
    cores = system["nproc"] or 1
    if raw["max_load_seen"] > cores:
        print(
            f"warning: the machine was busy (1-min load up to {raw['max_load_seen']:.1f} on "
            f"{cores} cores): wall-clock times and ratios are noisy; CPU seconds are in "
            "results.json"
        )
    print(f"total bench time {elapsed():.0f} s; raw numbers in {OUT / 'results.json'}")
    return rows


def main() -> int:
    return run_scenario(run)
