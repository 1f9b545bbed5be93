"""Split-and-stitch against the real RabbitMQ, S3 and ffmpeg: a clip above the threshold is
encoded as chunks by two in-process workers, and the stitched HLS output is checked as a
player would see it (m3u8, ffprobe, decoded timestamps)."""

from __future__ import annotations

import array
import asyncio
import itertools
import json
import subprocess
import uuid
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import m3u8
import pytest

from harness.broker import Broker, EventListener
from harness.metrics import metric_value
from harness.polling import eventually
from shared import keys
from shared.messages import (
    ChunkJob,
    MessageError,
    TranscodeFailed,
    TranscodeJob,
    TranscodeProgress,
    TranscodeSucceeded,
    chunk_job_id,
    parse_job,
    queue_kind,
)
from shared.settings import WorkerSettings
from tests.media import make_video
from tests.store import Store
from tests.worker.media_infos import info as media_info
from tests.worker.support import (
    Uploader,
    WorkerFactory,
    new_video_id,
)
from tests.worker.worker_process import WorkerProcessFactory
from transcode_service.chunk_audio import encode_pieces
from transcode_service.chunk_plan import ChunkPlan, plan_chunks
from transcode_service.chunks import (
    chunk_ladder_args,
    handle_chunk,
    media_playlist,
    should_chunk,
)
from transcode_service.errors import PermanentError
from transcode_service.handlers import Deps
from transcode_service.ladder import EncodedAudio, build_ladder_args, plan_ladder
from transcode_service.probe import probe

FPS = 25
SOURCE_SECONDS = 36
LADDER_RUNS = "video_worker_ffmpeg_ladder_runs_total"
CHUNKED = {"chunk_min_duration": 20, "chunk_seconds": 12, "segment_seconds": 6}


def test_plan_chunks_on_segment_borders() -> None:
    assert plan_chunks(36.0, 12, 6) == [
        ChunkPlan(0, 0.0, 12.0, 0),
        ChunkPlan(1, 12.0, 12.0, 2),
        ChunkPlan(2, 24.0, None, 4),
    ]
    # A remainder shorter than a segment joins the last chunk.
    assert [p.duration for p in plan_chunks(36.04, 12, 6)] == [12.0, 12.0, None]
    assert len(plan_chunks(42.0, 12, 6)) == 4
    assert plan_chunks(10.0, 12, 6) == [ChunkPlan(0, 0.0, None, 0)]


def test_chunk_length_is_a_multiple_of_the_segment_length() -> None:
    with pytest.raises(ValueError, match="multiple of"):
        WorkerSettings(chunk_seconds=10, segment_seconds=6)


def test_stitched_playlist_parses_with_continuous_segments() -> None:
    text = media_playlist([("a_00000.ts", 6.0), ("a_00001.ts", 6.0), ("a_00002.ts", 5.96)])
    playlist = m3u8.loads(text)
    assert playlist.is_endlist and playlist.playlist_type == "vod"
    assert playlist.target_duration == 6
    assert [s.uri for s in playlist.segments] == ["a_00000.ts", "a_00001.ts", "a_00002.ts"]


def _chunk(
    index: int, start: float, duration: float | None, first_segment: int, **fields: Any
) -> ChunkJob:
    """Chunk ``index`` of a 36 s video in 12 s chunks of two 6 s segments (``fields``
    override the rest)."""
    parent = fields.pop("parent_job_id", uuid.uuid4())
    values: dict[str, Any] = {
        "video_id": 1,
        "job_id": chunk_job_id(parent, index),
        "source_key": "raw/1/x.mp4",
        "parent_job_id": parent,
        "index": index,
        "count": 3,
        "start": start,
        "duration": duration,
        "total_duration": 36.0,
        "segment_seconds": 6,
        "first_segment": first_segment,
        "rungs": [180, 120],
        "source_size": 1,
    }
    return ChunkJob.model_validate({**values, **fields})


def test_chunk_command_is_the_ladder_on_a_time_window(tmp_path: Path) -> None:
    settings = WorkerSettings.model_validate({**CHUNKED, "rungs": [180, 120]})
    info = media_info(320, 180, duration=36.0)
    rungs = plan_ladder(info, settings)
    job = _chunk(1, 12.0, 12.0, 2)
    args = chunk_ladder_args(tmp_path / "source", info, rungs, tmp_path, job, settings)
    plain = build_ladder_args(tmp_path / "source", info, rungs, tmp_path, settings)
    # The input is seeked (accurately: -ss before -i while transcoding) and cut.
    at = args.index("-i")
    assert args[at - 4 : at] == ["-ss", "12.000000", "-t", "12.000000"]
    # Each HLS output continues the global numbering and timeline; nothing else changes.
    assert args.count("-start_number") == args.count("-output_ts_offset") == len(rungs)
    for at in (i for i, a in enumerate(args) if a == "-start_number"):
        assert args[at : at + 5] == [
            "-start_number", "2", "-output_ts_offset", "22.000000", "-hls_segment_filename",
        ]  # fmt: skip
    assert len(args) == len(plain) + 4 + 4 * len(rungs)
    # The last chunk runs to the end of the source: no -t.
    last = chunk_ladder_args(
        tmp_path / "source", info, rungs, tmp_path, _chunk(2, 24.0, None, 4), settings
    )
    assert "-t" not in last and last[last.index("-i") - 2 : last.index("-i")] == [
        "-ss",
        "24.000000",
    ]


def test_chunk_command_copies_its_piece_of_the_audio(tmp_path: Path) -> None:
    settings = WorkerSettings.model_validate({**CHUNKED, "rungs": [180, 120]})
    info = media_info(320, 180, duration=36.0)
    rungs = plan_ladder(info, settings)
    piece = EncodedAudio(tmp_path / "audio.nut", 0.0107, "nut")
    args = chunk_ladder_args(
        tmp_path / "source", info, rungs, tmp_path, _chunk(1, 12.0, 12.0, 2), settings, piece
    )
    # A second input, placed on the chunk's timeline, after the seeked source...
    inputs = [i for i, a in enumerate(args) if a == "-i"]
    assert [args[i + 1] for i in inputs] == [str(tmp_path / "source"), str(piece.path)]
    assert args[inputs[1] - 4 : inputs[1]] == ["-itsoffset", "0.010700", "-f", "nut"]
    # ...copied into every rung: no rung encodes audio of its own.
    assert args.count("1:a:0") == args.count("copy") == len(rungs)
    assert "aac" not in args


async def test_audio_is_encoded_once_and_cut_at_the_chunk_borders(tmp_path: Path) -> None:
    settings = WorkerSettings.model_validate({**CHUNKED, "rungs": [120]})
    source = make_video(tmp_path / "source.mp4", width=64, height=36, duration=36, fps=FPS)
    info = await probe(source, settings)
    plans = plan_chunks(info.duration, 12, 6)
    pieces = await encode_pieces(source, info, plans, settings)
    frame = 1024 / 44100
    assert len(pieces) == 3
    # The first piece starts with the encoder's priming frame, the others on the first
    # AAC frame at or after their border.
    assert abs(pieces[0][1] + frame) < 1e-5
    assert all(0 <= offset < frame for _, offset in pieces[1:])
    # One stream: each piece starts where the previous one ended, packet for packet.
    ends: list[tuple[float, float]] = []
    for path, _ in pieces:
        times = await asyncio.to_thread(_frame_times, path, "a:0")
        ends.append((times[0], times[-1]))
        assert all(abs(b - a - frame) < 1e-5 for a, b in itertools.pairwise(times))
    for (_, last), (first, _) in itertools.pairwise(ends):
        assert abs(first - last - frame) < 1e-5
    # Padded with silence to the video's duration at least.
    assert ends[-1][1] + frame - ends[0][0] >= info.duration


def _frame_times(path: Path, stream: str) -> list[float]:
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-protocol_whitelist", "file,crypto,data",
            "-select_streams", stream, "-show_entries", "packet=pts_time,duration_time",
            "-of", "json", str(path),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    packets = json.loads(out.stdout)["packets"]
    return sorted(float(p["pts_time"]) for p in packets)


def _window_loudness(playlist: Path, window: float = 0.005) -> dict[float, float]:
    """Mean absolute sample of each ``window`` of the decoded (mono) audio, by its start in
    seconds from the first sample."""
    rate = 44100
    out = subprocess.run(
        [
            "ffmpeg", "-v", "error", "-protocol_whitelist", "file,crypto,data",
            "-i", str(playlist), "-map", "0:a:0", "-ac", "1", "-ar", str(rate),
            "-f", "s16le", "-",
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    samples = array.array("h", out.stdout)
    step = int(rate * window)
    return {
        i / rate: sum(abs(x) for x in samples[i : i + step]) / step
        for i in range(0, len(samples) - step, step)
    }


async def verify_stitched(store: Store, video_id: int, dest: Path) -> set[str]:
    """The stitched output of a 36 s clip in two rungs, as a player sees it; returns the
    stored keys of the video."""
    # The stitched output, as a player sees it.
    prefix = keys.processed_prefix(video_id)
    local = await store.download_tree(prefix, dest)
    master = m3u8.load(str(local / "master.m3u8"))
    assert master.is_variant and len(master.playlists) == 2
    stored = set(await store.keys(prefix))
    for variant in master.playlists:
        playlist = m3u8.load(str(local / variant.uri))
        assert playlist.is_endlist and playlist.media_sequence == 0
        size = variant.uri.split("/")[0].removeprefix("hls_").removesuffix("p")
        assert [s.uri for s in playlist.segments] == [f"{size}p_{n:05d}.ts" for n in range(6)]
        folder = prefix + variant.uri.rsplit("/", 1)[0] + "/"
        assert all(folder + s.uri in stored for s in playlist.segments)
        total = sum(s.duration for s in playlist.segments)
        assert abs(total - SOURCE_SECONDS) <= 3 / FPS, total

        # Timestamps continue across chunk borders: every frame one frame after the last,
        # none missing or repeated, and the audio has no hole or overlap beyond an AAC frame.
        video = await asyncio.to_thread(_frame_times, local / variant.uri, "v:0")
        assert len(video) == SOURCE_SECONDS * FPS
        steps = {round(b - a, 4) for a, b in itertools.pairwise(video)}
        assert steps == {round(1 / FPS, 4)}, steps
        # The audio is one AAC stream encoded once: every packet exactly one AAC frame
        # after the previous one (to the MPEG-TS clock's tick), across borders too.
        audio = await asyncio.to_thread(_frame_times, local / variant.uri, "a:0")
        gaps = [b - a for a, b in itertools.pairwise(audio)]
        frame = 1024 / 44100
        assert all(abs(g - frame) <= 2 / 90000 for g in gaps), (min(gaps), max(gaps))
        assert abs(audio[-1] - audio[0] - SOURCE_SECONDS) < 0.1
        # And it sounds continuous: the 440 Hz tone keeps its loudness through every
        # border (an AAC encoder restarted at a border leaves ~23 ms of near-silence).
        loudness = await asyncio.to_thread(_window_loudness, local / variant.uri)
        steady = sorted(loudness.values())[len(loudness) // 2]
        for border in (12.0, 24.0):
            near = [v for t, v in loudness.items() if abs(t - border) < 0.1]
            assert min(near) > 0.8 * steady, (border, min(near), steady)

    probe = await asyncio.to_thread(
        subprocess.run,
        ["ffprobe", "-v", "error", "-protocol_whitelist", "file,crypto,data", "-show_format",
         "-of", "json", str(local / "master.m3u8")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert probe.returncode == 0 and probe.stderr == "", probe.stderr
    decoded = float(json.loads(probe.stdout)["format"]["duration"])
    assert abs(decoded - SOURCE_SECONDS) <= 3 / FPS + 0.05, decoded
    return stored


async def _run_chunked(
    broker: Broker,
    start_worker: WorkerFactory,
    upload_source: Uploader,
    source: Path,
) -> tuple[TranscodeJob, EventListener]:
    video_id = new_video_id()
    job = TranscodeJob(
        video_id=video_id, job_id=uuid.uuid4(), source_key=await upload_source(source, video_id)
    )
    async with broker.events() as events:
        await broker.publish(job)
        await events.wait_for(job.job_id, ("transcode_succeeded",), within=240)
    return job, events


async def test_long_clip_goes_online_through_chunks_on_two_workers(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    workers = [
        await start_worker(rungs=[180, 120], progress_interval=0.2, **CHUNKED) for _ in range(2)
    ]
    source = make_video(
        tmp_path / "long.mp4", width=320, height=180, duration=SOURCE_SECONDS, fps=FPS
    )
    job, events = await _run_chunked(broker, start_worker, store.upload_source, source)
    video_id = job.video_id
    failed = [e for e in events.events if isinstance(e, TranscodeFailed)]
    assert not failed, failed
    done = [e for e in events.of(job.job_id) if isinstance(e, TranscodeSucceeded)]
    assert done, "no succeeded event"
    event = done[0]
    assert event.video_id == video_id and [r.quality for r in event.renditions] == ["180p", "120p"]
    assert abs(event.duration - SOURCE_SECONDS) < 0.1

    # Three chunk jobs ran, spread over both workers, and reported progress on the way, all
    # of it for the job the API issued: it ignores events of jobs it does not know.
    mine = [e for e in events.events if e.video_id == video_id]
    assert {e.job_id for e in mine} == {job.job_id}
    progress = [e.percent for e in mine if isinstance(e, TranscodeProgress)]
    assert all(p <= 99 for p in progress) and any(p > 0 for p in progress), progress
    runs = [
        metric_value(await w.settled_metrics(), LADDER_RUNS, kind="transcode_chunk")
        for w in workers
    ]
    assert sum(runs) == 3, runs
    assert all(r >= 1 for r in runs), f"one worker ran every chunk: {runs}"

    stored = await verify_stitched(store, video_id, tmp_path / "out")
    prefix = keys.processed_prefix(video_id)
    # The audio pieces were removed once the video was stitched; the done and final objects
    # stay for late copies of a chunk.
    chunk_state = {
        k.removeprefix(f"{prefix}.chunks/{job.job_id}/") for k in stored if "/.chunks/" in k
    }
    assert chunk_state == {f"done/{i:06d}.json" for i in range(3)} | {"final.json"}, chunk_state

    async def duplicates() -> float:
        texts = [await worker.metrics() for worker in workers]
        return sum(metric_value(t, "video_worker_jobs_total", outcome="duplicate") for t in texts)

    before = await duplicates()
    # A redelivered chunk changes nothing: it is acked as a duplicate (result marker).
    async with broker.events() as again:
        await broker.publish(
            ChunkJob(
                video_id=video_id,
                job_id=chunk_job_id(job.job_id, 1),
                source_key=job.source_key,
                parent_job_id=job.job_id,
                index=1,
                count=3,
                start=12.0,
                duration=12.0,
                total_duration=event.duration,
                segment_seconds=6,
                first_segment=2,
                rungs=[180, 120],
                source_size=event.source_size,
            ).to_json(),
            routing_key="transcode",
        )
        # The redelivered chunk is acked as a duplicate.
        await eventually(duplicates, lambda seen: seen > before)
    assert set(await store.keys(prefix)) == stored
    assert not again.of(job.job_id)


async def test_short_clip_keeps_the_single_job_path(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    worker = await start_worker(rungs=[120], **CHUNKED)
    source = make_video(tmp_path / "short.mp4", width=320, height=180, duration=8, fps=FPS)
    await _run_chunked(broker, start_worker, store.upload_source, source)
    text = await worker.settled_metrics()
    assert metric_value(text, LADDER_RUNS, kind="transcode_chunk") == 0
    assert metric_value(text, LADDER_RUNS, kind="transcode") == 1


async def test_chunk_of_a_deleted_video_fails_with_a_reason(
    broker: Broker,
    start_worker: WorkerFactory,
    tmp_path: Path,
) -> None:
    await start_worker(rungs=[120], **CHUNKED)
    video_id = new_video_id()
    # Its source was deleted with its video.
    source_key = f"raw/{video_id}/{uuid.uuid4()}.mp4"
    chunk = _chunk(0, 0.0, 12.0, 0, video_id=video_id, source_key=source_key, rungs=[120])
    async with broker.events() as events:
        await broker.publish(chunk.to_json(), routing_key="transcode")
        # Reported for the video's transcode job, the one the API issued.
        failed = await events.wait_for(chunk.parent_job_id, ("transcode_failed",))
    assert isinstance(failed, TranscodeFailed) and failed.permanent
    assert failed.job_kind == "transcode"
    assert failed.reason.startswith("chunk 1 of 3: the uploaded file was not found")


async def test_video_deleted_mid_chunk_leaves_no_segments_behind(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    source = make_video(tmp_path / "long.mp4", width=64, height=36, duration=24, fps=FPS)
    video_id = new_video_id()
    source_key = await store.upload_source(source, video_id)
    chunk = _chunk(
        0, 0.0, 12.0, 0, video_id=video_id, source_key=source_key, count=2,
        total_duration=24.0, rungs=[36], source_size=source.stat().st_size,
    )  # fmt: skip

    async def delete_the_video(percent: float) -> None:
        # What the API's delete does, while ffmpeg encodes: the upload and the outputs so far.
        await store.delete(source_key)

    settings = deps.settings.model_copy(update={"segment_seconds": 6})
    with pytest.raises(PermanentError, match="chunk 1 of 2: the video was deleted"):
        await handle_chunk(chunk, replace(deps, settings=settings), delete_the_video)
    assert await store.keys(keys.processed_prefix(video_id)) == []


def test_should_chunk_needs_the_threshold() -> None:
    settings = WorkerSettings.model_validate(CHUNKED)
    assert not should_chunk(10.0, settings)
    assert not should_chunk(15.0, settings)  # above chunk_seconds, below the threshold
    assert should_chunk(36.0, settings)
    # By default, five minutes and more are chunked; 0 turns chunking off.
    assert not should_chunk(299.0, WorkerSettings())
    assert should_chunk(300.0, WorkerSettings())
    assert not should_chunk(3600.0, WorkerSettings(chunk_min_duration=0))


@pytest.fixture
def spawn_chunking(spawn_worker: WorkerProcessFactory) -> WorkerProcessFactory:
    """Worker processes with chunking on."""
    chunking = {f"VIDEO_WORKER__{k.upper()}": str(v) for k, v in CHUNKED.items()}
    return partial(spawn_worker, VIDEO_WORKER__RUNGS="[180, 120]", **chunking)


async def test_worker_killed_mid_chunk_does_not_change_the_result(
    broker: Broker,
    spawn_chunking: WorkerProcessFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    source = make_video(
        tmp_path / "long.mp4", width=320, height=180, duration=SOURCE_SECONDS, fps=FPS
    )
    video_id = new_video_id()
    job = TranscodeJob(
        video_id=video_id,
        job_id=uuid.uuid4(),
        source_key=await store.upload_source(source, video_id),
    )
    async with broker.events() as events:
        # The slow preset keeps the doomed worker's chunk running until it is killed.
        doomed = await spawn_chunking(VIDEO_WORKER__X264_PRESET="slow")
        await broker.publish(job)
        await doomed.wait_log(lambda r: r["event"] == "ffmpeg chunk started")
        await doomed.kill()  # SIGKILL mid-chunk: no clean-up, the delivery goes back
        survivor = await spawn_chunking()
        await events.wait_for(job.job_id, ("transcode_succeeded",), within=240)
        await survivor.wait_log(lambda r: r["event"] == "chunked video stitched", within=60)
    assert not [e for e in events.events if isinstance(e, TranscodeFailed)]
    # Every publication of the video's result is the same event (same message id).
    results = events.of(job.job_id, "transcode_succeeded")
    assert all(r == results[0] for r in results)
    assert not doomed.find(lambda r: r["event"] == "chunked video stitched")
    stored = await verify_stitched(store, job.video_id, tmp_path / "out")
    segments = [k for k in stored if k.endswith(".ts")]
    assert len(segments) == 2 * 6  # two rungs, six segments each: none doubled


def test_chunk_job_round_trips_and_is_validated() -> None:
    job = _chunk(1, 12.0, 12.0, 2, audio_offset=0.01, byte_ranges=[(0, 100), (500, 900)])
    parsed = parse_job(job.to_json())
    assert parsed == job and queue_kind(parsed) == "transcode"
    assert job.job_id == chunk_job_id(job.parent_job_id, 1)  # deterministic per chunk
    body = job.model_dump(mode="json")
    bad_fields: list[dict[str, Any]] = [
        {"index": 3}, {"rungs": []}, {"rungs": [0]}, {"count": 1},
        {"byte_ranges": [[5, 5]]}, {"byte_ranges": [[-1, 5]]}, {"byte_ranges": []},
        {"audio_offset": 30.0},
    ]  # fmt: skip
    for bad in bad_fields:
        with pytest.raises(MessageError):
            parse_job(json.dumps({**body, **bad}))
