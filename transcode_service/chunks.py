"""Split-and-stitch: a long video's ladder encoded as time chunks by any number of workers.

1. The video's transcode job probes the source as usual; when it is at least
   ``worker.chunk_min_duration`` long it plans chunks of ``worker.chunk_seconds`` (a
   multiple of the segment length, so chunk borders are segment borders) and publishes one
   ``ChunkJob`` per chunk to the transcode queue instead of encoding.
2. Any worker runs a chunk: it streams the source to disk, encodes the chunk's time range
   with the same ladder command (same rungs, forced keyframes, rate control) plus
   ``-ss``/``-t`` on the input, ``-start_number`` (globally continuous segment names) and
   ``-output_ts_offset`` (MPEG-TS timestamps continue across chunk borders), uploads its
   segments under the renditions' folders and writes a *done* object describing them.
3. The chunk that finds every done object present takes the finalization lease, writes
   each variant playlist and the master from the done objects, stores a *final* object
   (the succeeded event) and returns the event; the consumer publishes it once. Every later
   copy of a chunk returns the stored event again (same message id, and the API's guarded
   update makes a repeat a no-op), so a crash between the final object and the publish
   still ends with the video online.

Object keys are deterministic (segments, done objects, playlists), so a redelivered or
duplicated chunk overwrites with identical content and never doubles a segment.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from shared import keys
from shared.messages import (
    AnyJob,
    ChunkJob,
    JobKind,
    TranscodeJob,
    TranscodeProgress,
    TranscodeSucceeded,
    chunk_job_id,
)
from shared.settings import WorkerSettings
from transcode_service import byte_ranges, chunk_audio, handlers, storage
from transcode_service.budget import Watchdog, cpu_budget, run_watched
from transcode_service.chunk_plan import ChunkPlan, plan_chunks
from transcode_service.errors import PermanentError, RetryableError
from transcode_service.ffmpeg import Progress, check_result
from transcode_service.handlers import (
    LADDER_NICENESS,
    Deps,
    Handler,
    JobTimings,
    PercentCallback,
    check_source_key,
    handle_transcode,
)
from transcode_service.ladder import (
    EncodedAudio,
    Rung,
    Variant,
    build_ladder_args,
    build_master_playlist,
    output_fps,
    plan_ladder,
    read_media_playlist,
)
from transcode_service.probe import TRUNCATION_RATIO, MediaInfo
from transcode_service.sandbox import sandbox_for
from transcode_service.workdir import job_workdir

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger(__name__)

# Every chunk's output timeline starts this many seconds later than the source's. With an
# offset of 0 the first chunk's B-frame and AAC lead-in would be negative, and the muxer
# would shift that chunk alone (by ~2 frames), breaking continuity at the first border.
TIMELINE_BASE = 10.0
# How long a chunk that finds the finalization lease taken waits for the final object
# before giving up (a retry then tries again; the lease dies with a crashed holder).
FINALIZE_WAIT = 120.0
FINALIZE_POLL = 0.5
# Progress stays below 100 until the succeeded event says so.
PROGRESS_CAP = 99.0


def should_chunk(duration: float, settings: WorkerSettings) -> bool:
    return (
        settings.chunk_min_duration > 0
        and duration >= settings.chunk_min_duration
        and len(plan_chunks(duration, settings.chunk_seconds, settings.segment_seconds)) > 1
    )


def chunk_length(job: ChunkJob) -> float:
    """Seconds of source the chunk covers (the last one: what is left of the probed
    duration)."""
    if job.duration is not None:
        return job.duration
    return max(0.0, job.total_duration - job.start)


def nominal_chunk_seconds(job: ChunkJob) -> float:
    return job.duration if job.duration is not None else job.start / job.index


def chunk_ladder_args(
    source: Path,
    info: MediaInfo,
    rungs: list[Rung],
    out_dir: Path,
    job: ChunkJob,
    settings: WorkerSettings,
    audio: EncodedAudio | None = None,
) -> list[str]:
    """The one-job ladder command restricted to the chunk's time range: ``-ss``/``-t``
    before the input (an accurate seek: decoding starts at the keyframe before and frames
    before ``start`` are dropped, so the chunk starts exactly on its border), and per HLS
    output the chunk's first segment number and its place on the global timeline. The
    forced-keyframe expression counts from the chunk's start, which is a segment border.
    ``audio`` is the chunk's piece of the video's audio, copied into every rung."""
    args = build_ladder_args(source, info, rungs, out_dir, settings, encoded_audio=audio)
    window = ["-ss", f"{job.start:.6f}"]
    if job.duration is not None:
        window += ["-t", f"{job.duration:.6f}"]
    at = args.index("-i")
    args[at:at] = window
    placed: list[str] = []
    for arg in args:
        if arg == "-hls_segment_filename":
            placed += [
                "-start_number", str(job.first_segment),
                "-output_ts_offset", f"{TIMELINE_BASE + job.start:.6f}",
            ]  # fmt: skip
        placed.append(arg)
    return placed


# --------------------------------------------------------------------------- S3 state


class ChunkStore:
    """The coordination objects of one chunked transcode, next to the result markers:
    ``processed/{id}/.chunks/{parent job}/done/{index}.json`` and ``.../final.json``."""

    def __init__(self, s3: S3Client, bucket: str, video_id: int, parent: uuid.UUID) -> None:
        self._s3 = s3
        self._bucket = bucket
        self.prefix = f"{keys.processed_prefix(video_id)}.chunks/{parent}/"

    def audio_key(self, index: int) -> str:
        return f"{self.prefix}audio/{chunk_audio.piece_name(index)}"

    def done_key(self, index: int) -> str:
        return f"{self.prefix}done/{index:06d}.json"

    @property
    def final_key(self) -> str:
        return f"{self.prefix}final.json"

    async def get_done(self, index: int) -> dict[str, Any] | None:
        return await storage.get_json(self._s3, self._bucket, self.done_key(index))

    async def put_done(self, index: int, data: dict[str, Any]) -> None:
        await storage.put_json(self._s3, self._bucket, self.done_key(index), data)

    async def get_final(self) -> TranscodeSucceeded | None:
        data = await storage.get_json(self._s3, self._bucket, self.final_key)
        return None if data is None else TranscodeSucceeded.model_validate(data)

    async def put_final(self, event: TranscodeSucceeded) -> None:
        await storage.put_json(
            self._s3, self._bucket, self.final_key, event.model_dump(mode="json")
        )

    async def done_indexes(self) -> set[int]:
        found: set[int] = set()
        with storage.retryable("listing finished chunks"):
            paginator = self._s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{self.prefix}done/"):
                for obj in page.get("Contents", []):
                    stem = obj["Key"].rsplit("/", 1)[-1].removesuffix(".json")
                    if stem.isdigit():
                        found.add(int(stem))
        return found


# --------------------------------------------------------------------------- the video's job


async def split_video(
    job: AnyJob, deps: Deps, source: Path, info: MediaInfo, size: int
) -> TranscodeProgress | None:
    """The hook of ``handle_transcode``: encode the audio once and store its pieces, publish
    the chunk jobs of a long enough video and return the (0 %) progress event to publish,
    or None to encode in this job as usual."""
    settings = deps.settings
    if not isinstance(job, TranscodeJob) or deps.publisher is None:
        return None
    if info.still:
        # One picture beside the sound: the ladder is cheap already, and a chunk would
        # have to re-create the picture's frames from its own seek point.
        return None
    if not should_chunk(info.duration, settings):
        return None
    plans = plan_chunks(info.duration, settings.chunk_seconds, settings.segment_seconds)
    rungs = [r.size for r in plan_ladder(info, settings)]
    offsets = await _store_audio_pieces(job, deps, source, info, plans)
    # With the audio in pieces, a chunk needs only its own share of the source's video.
    ranges = await byte_ranges.plan_ranges(source, info, plans, settings)
    for plan in plans:
        await deps.publisher.publish_new_job(
            ChunkJob(
                video_id=job.video_id,
                job_id=chunk_job_id(job.job_id, plan.index),
                source_key=job.source_key,
                source_etag=job.source_etag,
                parent_job_id=job.job_id,
                index=plan.index,
                count=len(plans),
                start=plan.start,
                duration=plan.duration,
                total_duration=info.duration,
                segment_seconds=settings.segment_seconds,
                first_segment=plan.first_segment,
                rungs=rungs,
                source_size=size,
                audio_offset=offsets[plan.index],
                source_fps=info.fps or None,
                byte_ranges=None if ranges is None else ranges[plan.index],
            )
        )
    log.info(
        "chunk jobs published",
        chunks=len(plans),
        chunk_seconds=settings.chunk_seconds,
        ranged=ranges is not None,
    )
    return TranscodeProgress(video_id=job.video_id, job_id=job.job_id, percent=0.0)


async def _store_audio_pieces(
    job: TranscodeJob, deps: Deps, source: Path, info: MediaInfo, plans: list[ChunkPlan]
) -> list[float | None]:
    """Each chunk's offset to its stored piece of the audio (None for all without audio).
    Stored before any chunk job exists, so a chunk never waits for its piece."""
    if not info.has_audio:
        return [None] * len(plans)
    store = ChunkStore(deps.s3, deps.bucket, job.video_id, job.job_id)
    pieces = await chunk_audio.encode_pieces(source, info, plans, deps.settings)
    await storage.upload_files(
        deps.s3,
        deps.bucket,
        [(path, store.audio_key(i)) for i, (path, _) in enumerate(pieces)],
        deps.upload_semaphore,
    )
    log.info("audio encoded once for the chunks", pieces=len(pieces))
    return [offset for _, offset in pieces]


# --------------------------------------------------------------------------- one chunk


async def handle_chunk(
    job: ChunkJob,
    deps: Deps,
    on_progress: PercentCallback | None = None,
    timings: JobTimings | None = None,
) -> TranscodeSucceeded | TranscodeProgress:
    timings = timings or JobTimings()
    store = ChunkStore(deps.s3, deps.bucket, job.video_id, job.parent_job_id)
    try:
        check_source_key(job)
        if await store.get_done(job.index) is None:
            await _encode_chunk(job, deps, store, on_progress, timings)
        return await _after_chunk(job, deps, store)
    except PermanentError as exc:
        raise PermanentError(f"chunk {job.index + 1} of {job.count}: {exc}") from exc


async def _encode_chunk(
    job: ChunkJob,
    deps: Deps,
    store: ChunkStore,
    on_progress: PercentCallback | None,
    timings: JobTimings,
) -> None:
    # The chunk's ladder must be the one the video's job planned, whatever this worker's
    # own rungs and segment length are.
    settings = deps.settings.model_copy(
        update={"rungs": job.rungs, "segment_seconds": job.segment_seconds}
    )
    length = chunk_length(job)
    # Finished chunks, so this chunk's progress adds to theirs (the API keeps the maximum).
    done_seconds = len(await store.done_indexes()) * nominal_chunk_seconds(job)
    with job_workdir(settings.work_dir, job.kind, str(job.job_id)) as workdir:
        # Every chunk encodes at the frame rate the video's job measured over the whole
        # source (a chunk of a ranged source could not scan the file's gaps anyway); a job
        # without it measures the same way.
        source, info, _ = await handlers._fetch_and_probe(
            job,
            deps,
            workdir,
            timings,
            measure=job.source_fps is None,
            ranges=job.byte_ranges,
            size=job.source_size,
        )
        if job.source_fps is not None:
            info = dataclasses.replace(
                info, fps=job.source_fps, duration=job.total_duration, measured=True
            )
        rungs = plan_ladder(info, settings)
        if [r.size for r in rungs] != job.rungs:
            raise PermanentError("the source's ladder differs from the one planned for it")
        out_dir = workdir / "out"
        for rung in rungs:
            (out_dir / rung.dirname).mkdir(parents=True)
        audio = None
        if info.has_audio and job.audio_offset is not None:
            piece = await chunk_audio.download_piece(
                deps.s3, deps.bucket, store.audio_key(job.index), workdir / "audio.nut", settings
            )
            audio = EncodedAudio(piece, job.audio_offset, chunk_audio.PIECE_FORMAT)
        args = chunk_ladder_args(source, info, rungs, out_dir, job, settings, audio)

        async def progress(p: Progress) -> None:
            if on_progress is not None:
                encoded = min(p.out_time, length)
                share = 100.0 * (done_seconds + encoded) / job.total_duration
                await on_progress(min(PROGRESS_CAP, share))

        log.info("ffmpeg chunk started", chunk=job.index, start=job.start, length=length)
        deps.metrics.ffmpeg_runs.labels(kind=job.kind).inc()
        # The budget of the chunk's own share of the content.
        watchdog = Watchdog(
            budget=cpu_budget(dataclasses.replace(info, duration=length), rungs, settings),
            min_speed=settings.min_speed,
            window=settings.speed_window,
        )
        with timings.stage("ffmpeg"):
            result = await run_watched(
                ["nice", "-n", str(LADDER_NICENESS), *args],
                watchdog,
                time_limit=settings.ffmpeg_timeout_base + settings.ffmpeg_timeout_factor * length,
                tool="ffmpeg-chunk",
                sandbox=sandbox_for(settings, workdir),
                on_progress=progress,
            )
        check_result(result, "transcoding")
        decoded = result.last_progress.out_time if result.last_progress else 0.0
        if decoded < length * TRUNCATION_RATIO - 1.0:
            raise PermanentError(
                f"the video is damaged or truncated: only {decoded:.1f} s of the "
                f"{length:.1f} s from {job.start:.0f} s could be decoded"
            )
        timings.speed = round(length / max(result.elapsed, 1e-3), 3)
        deps.metrics.ffmpeg_speed.labels(kind=job.kind).observe(timings.speed)

        expected = round(nominal_chunk_seconds(job) / job.segment_seconds)
        uploads: list[tuple[Path, str]] = []
        described: list[dict[str, Any]] = []
        for rung in rungs:
            playlist = out_dir / rung.dirname / rung.playlist_name
            entries = read_media_playlist(playlist) if playlist.exists() else []
            if not entries:
                raise PermanentError(f"transcoding produced no {rung.quality} output")
            if job.duration is not None and len(entries) > expected:
                # The next chunk's first segment has the next number: more would clash.
                raise PermanentError(
                    f"the {rung.quality} rendition of a chunk has {len(entries)} segments "
                    f"where {expected} fit; the source's timestamps are irregular"
                )
            folder = keys.rendition_dir(job.video_id, rung.size)
            segments = []
            for name, seconds in entries:
                path = out_dir / rung.dirname / name
                uploads.append((path, folder + name))
                segments.append([name, seconds, path.stat().st_size])
            described.append({"rung": dataclasses.asdict(rung), "segments": segments})
        with timings.stage("upload"):
            await storage.upload_files(deps.s3, deps.bucket, uploads, deps.upload_semaphore)
        if not await storage.exists(deps.s3, deps.bucket, job.source_key):
            # Deleted while this chunk was encoded: the API removed the video's outputs
            # before these were written, so nobody else will.
            await storage.delete_keys(deps.s3, deps.bucket, [key for _, key in uploads])
            raise PermanentError("the video was deleted while the chunk was being encoded")
        # Written after every segment is stored: a done object vouches for its segments.
        await store.put_done(
            job.index,
            {
                "index": job.index,
                "has_audio": info.has_audio,
                "fps": output_fps(info, settings),
                "width": info.display_width,
                "height": info.display_height,
                "renditions": described,
            },
        )


async def _after_chunk(
    job: ChunkJob, deps: Deps, store: ChunkStore
) -> TranscodeSucceeded | TranscodeProgress:
    """The succeeded event if this chunk completes the video (or it was completed
    already), else a progress event counting the finished chunks."""
    final = await store.get_final()
    if final is not None:
        return final
    done = await store.done_indexes()
    if not set(range(job.count)) <= done:
        finished = len(done & set(range(job.count)))
        percent = min(PROGRESS_CAP, 100.0 * finished / job.count)
        return TranscodeProgress(video_id=job.video_id, job_id=job.parent_job_id, percent=percent)
    return await _finalize_once(job, deps, store)


async def _finalize_once(job: ChunkJob, deps: Deps, store: ChunkStore) -> TranscodeSucceeded:
    """Two chunks finishing together may both see every done object; the lease lets one
    stitch while the other waits for its final object."""
    leases = deps.leases
    deadline = time.monotonic() + FINALIZE_WAIT
    lease_id = str(job.parent_job_id)
    while True:
        if leases is None or await leases.acquire("finalize", lease_id):
            try:
                final = await store.get_final()
                if final is None:
                    final = await _stitch(job, deps, store)
                    await store.put_final(final)
                    # Every chunk is done: a copy of one returns the final object without
                    # encoding, so the audio pieces are no longer needed by anyone.
                    await storage.delete_keys(
                        deps.s3, deps.bucket, [store.audio_key(i) for i in range(job.count)]
                    )
                    log.info("chunked video stitched", chunks=job.count)
                return final
            finally:
                if leases is not None:
                    await asyncio.shield(leases.release("finalize", lease_id))
        final = await store.get_final()
        if final is not None:
            return final
        if time.monotonic() > deadline:
            raise RetryableError("the video's final step is still running on another worker")
        await asyncio.sleep(FINALIZE_POLL)


# --------------------------------------------------------------------------- the final step


def media_playlist(segments: list[tuple[str, float]]) -> str:
    target = max(math.ceil(seconds) for _, seconds in segments)
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{target}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for name, seconds in segments:
        lines += [f"#EXTINF:{seconds:.6f},", name]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def bandwidths(segments: list[tuple[float, int]]) -> tuple[int, int]:
    """(peak, average) bit rate from (duration, bytes) pairs; as ``measure_playlist``,
    peak ignores segments under a second unless nothing else is left."""
    longest = max(d for d, _ in segments)
    rates = [size * 8 / d for d, size in segments if d >= min(1.0, longest) and d > 0]
    total_time = sum(d for d, _ in segments) or 1.0
    average = sum(size * 8 for _, size in segments) / total_time
    peak = max(rates) if rates else average
    return max(1, math.ceil(peak)), max(1, math.ceil(average))


async def _stitch(job: ChunkJob, deps: Deps, store: ChunkStore) -> TranscodeSucceeded:
    chunks: list[dict[str, Any]] = []
    for index in range(job.count):
        done = await store.get_done(index)
        if done is None:
            raise RetryableError(f"chunk {index + 1} of {job.count} is not stored yet")
        chunks.append(done)
    first = chunks[0]
    sizes = [r["rung"]["size"] for r in first["renditions"]]
    if any([r["rung"]["size"] for r in c["renditions"]] != sizes for c in chunks):
        raise PermanentError("the chunks of the video were encoded with different ladders")

    video_id = job.video_id
    variants: list[Variant] = []
    with job_workdir(deps.settings.work_dir, "finalize", str(job.parent_job_id)) as workdir:
        files: list[tuple[Path, str]] = []
        for position, size in enumerate(sizes):
            rung = Rung(**first["renditions"][position]["rung"])
            segments = [
                (str(name), float(seconds), int(length))
                for chunk in chunks
                for name, seconds, length in chunk["renditions"][position]["segments"]
            ]
            playlist = workdir / rung.playlist_name
            playlist.write_text(media_playlist([(n, s) for n, s, _ in segments]))
            files.append((playlist, keys.rendition_playlist_key(video_id, size)))
            peak, average = bandwidths([(s, b) for _, s, b in segments])
            variants.append(Variant(rung, peak, average, f"{rung.dirname}/{rung.playlist_name}"))
        master = workdir / "master.m3u8"
        master.write_text(
            build_master_playlist(variants, has_audio=first["has_audio"], fps=first["fps"])
        )
        await storage.upload_files(deps.s3, deps.bucket, files, deps.upload_semaphore)
        # Last, so a player never sees a master playlist whose variants are missing.
        master_key = keys.master_playlist_key(video_id)
        await storage.upload_files(
            deps.s3, deps.bucket, [(master, master_key)], deps.upload_semaphore
        )
    return TranscodeSucceeded(
        video_id=video_id,
        job_id=job.parent_job_id,
        master_key=master_key,
        renditions=handlers.renditions(video_id, variants),
        duration=round(job.total_duration, 3),
        width=first["width"],
        height=first["height"],
        source_size=job.source_size,
    )


# --------------------------------------------------------------------------- dispatch


async def handle_transcode_queue(
    job: AnyJob,
    deps: Deps,
    on_progress: PercentCallback | None = None,
    timings: JobTimings | None = None,
) -> TranscodeSucceeded | TranscodeProgress:
    """Everything on the transcode queue: chunk jobs, and video jobs that may split."""
    if isinstance(job, ChunkJob):
        return await handle_chunk(job, deps, on_progress, timings)
    return await handle_transcode(job, deps, on_progress, timings, splitter=split_video)


HANDLERS: dict[JobKind, Handler] = {**handlers.HANDLERS, "transcode": handle_transcode_queue}
