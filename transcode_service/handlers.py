"""The jobs themselves, apart from any transport: plain async functions that take a validated
job and their dependencies and return the event to publish, or raise ``PermanentError`` /
``RetryableError``. Tests call them without a broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from shared import keys
from shared.messages import (
    AnyJob,
    CoverReady,
    JobKind,
    Rendition,
    TranscodeProgress,
    TranscodeSucceeded,
)
from shared.settings import WorkerSettings
from transcode_service import storage
from transcode_service.budget import Watchdog, cpu_budget, run_watched
from transcode_service.cover import extract_cover
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import ProcessResult, Progress, check_result, run_process
from transcode_service.ladder import (
    Variant,
    build_ladder_args,
    build_master_playlist,
    measure_playlist,
    output_fps,
    plan_ladder,
    still_picture_args,
)
from transcode_service.lease import LeaseManager
from transcode_service.metrics import Metrics
from transcode_service.probe import TRUNCATION_RATIO, MediaInfo, probe
from transcode_service.publisher import Publisher
from transcode_service.sandbox import sandbox_for
from transcode_service.workdir import file_size, job_workdir

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger(__name__)

PercentCallback = Callable[[float], Awaitable[None]]
# Hook of chunked transcoding (chunks.py): given the probed source, either hands the video
# to chunk jobs and returns the event to publish, or returns None for the one-job ladder.
Splitter = Callable[[AnyJob, "Deps", Path, MediaInfo, int], Awaitable[TranscodeProgress | None]]
LADDER_NICENESS = 10
STILL_TIMEOUT = 60.0


@dataclass
class Deps:
    """What a handler needs; built once per process by main(). The queue consumers take
    their settings, metrics, publisher and leases from it too."""

    settings: WorkerSettings
    s3: S3Client
    bucket: str
    upload_semaphore: asyncio.Semaphore
    metrics: Metrics
    # Chunked transcoding publishes chunk jobs and takes the finalization lease.
    publisher: Publisher | None = None
    leases: LeaseManager | None = None


@dataclass
class JobTimings:
    """Seconds per stage, for the one summary line per job."""

    stages: dict[str, float] = field(default_factory=dict)
    speed: float | None = None
    source_size: int | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.stages[name] = round(time.monotonic() - started, 3)


def check_source_key(job: AnyJob) -> None:
    """A job may only read its own video's upload: whoever can publish to the broker must
    not be able to have another video's source transcoded into this video's outputs (or
    this one's into another's)."""
    if not keys.is_raw_key_of(job.video_id, job.source_key):
        raise PermanentError(
            f"the job's source_key is not an upload of video {job.video_id} "
            f"(expected a key under {keys.raw_prefix(job.video_id)})"
        )


async def _fetch_and_probe(
    job: AnyJob,
    deps: Deps,
    workdir: Path,
    timings: JobTimings,
    *,
    measure: bool,
    ranges: Sequence[tuple[int, int]] | None = None,
    size: int = 0,
) -> tuple[Path, MediaInfo, int]:
    """Download the source (with ``ranges``: only those bytes of its ``size``, see
    byte_ranges.py) and probe it."""
    source = workdir / "source"
    with timings.stage("download"):
        if ranges is None:
            size = await storage.download(
                deps.s3,
                deps.bucket,
                job.source_key,
                source,
                max_bytes=deps.settings.max_source_bytes,
                etag=job.source_etag,
            )
        else:
            fetched = await storage.download_ranges(
                deps.s3,
                deps.bucket,
                job.source_key,
                source,
                ranges,
                size=size,
                etag=job.source_etag,
            )
            log.info("source fetched in part", fetched=fetched, size=size, ranges=len(ranges))
    timings.source_size = size
    with timings.stage("probe"):
        info = await probe(source, deps.settings, measure=measure)
    log.info(
        "source probed",
        format=info.format_name,
        codec=info.video_codec,
        width=info.width,
        height=info.height,
        rotation=info.rotation,
        duration=info.duration,
        fps=round(info.fps, 3),
        still=info.still,
        measured=info.measured,
        has_audio=info.has_audio,
        size=size,
    )
    return source, info, size


async def handle_cover(
    job: AnyJob,
    deps: Deps,
    on_progress: PercentCallback | None = None,
    timings: JobTimings | None = None,
) -> CoverReady:
    # on_progress is unused (one ffmpeg frame grab has no progress worth reporting); it keeps
    # one signature for every entry of HANDLERS.
    check_source_key(job)
    timings = timings or JobTimings()
    with job_workdir(deps.settings.work_dir, job.kind, str(job.job_id)) as workdir:
        # The cover only seeks with the duration (and falls back to the start): the header's
        # is good enough when there is one, and keeps the cover fast on long uploads.
        source, info, _ = await _fetch_and_probe(job, deps, workdir, timings, measure=False)
        with timings.stage("ffmpeg"):
            jpeg = await extract_cover(source, info, workdir / "cover.jpg", deps.settings)
        key = keys.cover_key(job.video_id)
        with timings.stage("upload"):
            await storage.upload_files(deps.s3, deps.bucket, [(jpeg, key)], deps.upload_semaphore)
    return CoverReady(
        video_id=job.video_id,
        job_id=job.job_id,
        cover_key=key,
        # Only a measured duration is reported; the transcode's result is authoritative.
        duration=round(info.duration, 3) if info.measured else None,
        width=info.display_width,
        height=info.display_height,
    )


async def _still_picture(
    source: Path, info: MediaInfo, workdir: Path, settings: WorkerSettings
) -> Path:
    dest = workdir / "still.png"
    result = await run_process(
        still_picture_args(source, info, dest),
        time_limit=STILL_TIMEOUT,
        tool="ffmpeg-still",
        sandbox=sandbox_for(settings, workdir),
    )
    check_result(result, "decoding the still picture")
    if file_size(dest) == 0:
        raise PermanentError("the video's picture could not be decoded")
    return dest


def renditions(video_id: int, variants: list[Variant]) -> list[Rendition]:
    """The succeeded event's description of each stored variant."""
    return [
        Rendition(
            quality=v.rung.quality,
            width=v.rung.width,
            height=v.rung.height,
            bandwidth=v.bandwidth,
            playlist_key=keys.rendition_playlist_key(video_id, v.rung.size),
        )
        for v in variants
    ]


def ladder_timeout(info: MediaInfo, settings: WorkerSettings) -> float:
    return settings.ffmpeg_timeout_base + settings.ffmpeg_timeout_factor * info.duration


def check_complete(result: ProcessResult, info: MediaInfo) -> None:
    """ffmpeg exits 0 on a file whose packets are there but do not decode, having encoded
    what it could; a stream much shorter than measured is a damaged upload."""
    decoded = result.last_progress.out_time if result.last_progress else 0.0
    if decoded < info.duration * TRUNCATION_RATIO - 1.0:
        raise PermanentError(
            f"the video is damaged or truncated: only {decoded:.1f} s of "
            f"{info.duration:.1f} s could be decoded"
        )


async def handle_transcode(
    job: AnyJob,
    deps: Deps,
    on_progress: PercentCallback | None = None,
    timings: JobTimings | None = None,
    splitter: Splitter | None = None,
) -> TranscodeSucceeded | TranscodeProgress:
    check_source_key(job)
    timings = timings or JobTimings()
    settings = deps.settings
    with job_workdir(settings.work_dir, job.kind, str(job.job_id)) as workdir:
        source, info, size = await _fetch_and_probe(job, deps, workdir, timings, measure=True)
        if splitter is not None and (handed_off := await splitter(job, deps, source, info, size)):
            return handed_off
        rungs = plan_ladder(info, settings)
        out_dir = workdir / "out"
        for rung in rungs:
            (out_dir / rung.dirname).mkdir(parents=True)
        still = await _still_picture(source, info, workdir, settings) if info.still else None
        args = build_ladder_args(source, info, rungs, out_dir, settings, still)
        watchdog = Watchdog(
            budget=cpu_budget(info, rungs, settings),
            min_speed=settings.min_speed,
            window=settings.speed_window,
        )

        async def progress(p: Progress) -> None:
            if on_progress is not None and info.duration > 0:
                await on_progress(min(100.0, 100.0 * p.out_time / info.duration))

        log.info(
            "ffmpeg ladder started",
            rungs=[f"{r.quality}:{r.width}x{r.height}" for r in rungs],
            fps=output_fps(info, settings),
            cpu_budget=round(watchdog.budget),
        )
        deps.metrics.ffmpeg_runs.labels(kind=job.kind).inc()
        with timings.stage("ffmpeg"):
            try:
                result = await run_watched(
                    # Lower CPU priority (nice execs ffmpeg, same pid): a cover extraction on
                    # the same machine preempts the long ladder and stays fast under a backlog.
                    ["nice", "-n", str(LADDER_NICENESS), *args],
                    watchdog,
                    time_limit=ladder_timeout(info, settings),
                    tool="ffmpeg-ladder",
                    sandbox=sandbox_for(settings, workdir),
                    on_progress=progress,
                )
            finally:
                log.info(
                    "ffmpeg ladder ended",
                    # Sampled once a second: a run shorter than that shows 0.
                    cpu_seconds_sampled=round(watchdog.cpu_seconds, 1),
                    cpu_budget=round(watchdog.budget),
                )
        check_result(result, "transcoding")
        check_complete(result, info)
        elapsed = max(result.elapsed, 1e-3)
        timings.speed = round(info.duration / elapsed, 3)
        deps.metrics.ffmpeg_speed.labels(kind=job.kind).observe(timings.speed)

        fps = output_fps(info, settings)
        variants: list[Variant] = []
        segment_uploads: list[tuple[Path, str]] = []
        for rung in rungs:
            playlist = out_dir / rung.dirname / rung.playlist_name
            if not playlist.exists():
                raise PermanentError(f"transcoding produced no {rung.quality} output")
            peak, average, segments = measure_playlist(playlist)
            rendition_dir = keys.rendition_dir(job.video_id, rung.size)
            segment_uploads += [(s, rendition_dir + s.name) for s in segments]
            segment_uploads.append((playlist, keys.rendition_playlist_key(job.video_id, rung.size)))
            variants.append(Variant(rung, peak, average, f"{rung.dirname}/{rung.playlist_name}"))
        master = out_dir / "master.m3u8"
        master.write_text(build_master_playlist(variants, has_audio=info.has_audio, fps=fps))
        master_key = keys.master_playlist_key(job.video_id)
        with timings.stage("upload"):
            await storage.upload_files(deps.s3, deps.bucket, segment_uploads, deps.upload_semaphore)
            # Last, so a player never sees a master playlist whose variants are missing.
            await storage.upload_files(
                deps.s3, deps.bucket, [(master, master_key)], deps.upload_semaphore
            )
    return TranscodeSucceeded(
        video_id=job.video_id,
        job_id=job.job_id,
        master_key=master_key,
        renditions=renditions(job.video_id, variants),
        duration=round(info.duration, 3),
        width=info.display_width,
        height=info.display_height,
        source_size=size,
    )


Handler = Callable[
    [AnyJob, Deps, PercentCallback | None, JobTimings | None],
    Awaitable[CoverReady | TranscodeSucceeded | TranscodeProgress],
]
# The consumer of each kind's queue checks a job's kind before calling its handler.
HANDLERS: dict[JobKind, Handler] = {"cover": handle_cover, "transcode": handle_transcode}
