"""The handlers against real S3 and ffmpeg, without a broker: ladder outputs checked with
ffprobe, the master playlist parsed, every variant and segment present in S3."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import m3u8
import pytest

from shared import keys
from shared.messages import CoverJob, TranscodeJob, TranscodeSucceeded
from tests.media import ffprobe, make_video
from tests.store import Store
from tests.worker.bad_inputs import BAD_INPUTS
from tests.worker.outputs import check_outputs, fetch_outputs, video_stream, with_rungs
from tests.worker.support import Uploader, new_video_id, uploaded_job
from transcode_service.errors import PermanentError
from transcode_service.handlers import Deps, JobTimings, handle_cover, handle_transcode


async def transcode(deps: Deps, upload_source: Uploader, source: Path) -> TranscodeSucceeded:
    job = await uploaded_job(TranscodeJob, upload_source, source)
    percents: list[float] = []

    async def on_progress(percent: float) -> None:
        percents.append(percent)

    event = await handle_transcode(job, deps, on_progress)
    assert isinstance(event, TranscodeSucceeded)
    assert event.video_id == job.video_id and event.job_id == job.job_id
    assert event.master_key == keys.master_playlist_key(job.video_id)
    assert percents and all(0 <= p <= 100 for p in percents)
    return event


async def test_default_ladder_720p_source(deps: Deps, store: Store, tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", width=1280, height=720, duration=2)
    event = await transcode(deps, store.upload_source, source)
    # Default rungs 1080/720/480/360/240: no 1080p for a 720p source.
    assert [(r.quality, r.width, r.height) for r in event.renditions] == [
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
        ("240p", 426, 240),
    ]
    assert event.width == 1280 and event.height == 720
    assert event.duration == pytest.approx(2, abs=0.1)
    assert event.source_size == source.stat().st_size
    bandwidths = [r.bandwidth for r in event.renditions]
    assert bandwidths == sorted(bandwidths, reverse=True)
    await check_outputs(store, event, tmp_path, audio=True)
    head = await store.head(keys.rendition_playlist_key(event.video_id, 720))
    assert head["ContentType"] == "application/vnd.apple.mpegurl"
    segment = next(
        k for k in await store.keys(keys.rendition_dir(event.video_id, 720)) if k.endswith(".ts")
    )
    head = await store.head(segment)
    assert head["ContentType"] == "video/mp2t"
    assert "max-age" in head["CacheControl"]


async def test_480p_source_is_not_upscaled(deps: Deps, store: Store, tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", width=854, height=480, duration=1)
    event = await transcode(deps, store.upload_source, source)
    assert [r.quality for r in event.renditions] == ["480p", "360p", "240p"]
    assert max(r.height for r in event.renditions) == 480
    await check_outputs(store, event, tmp_path, audio=True)


async def test_portrait_source(deps: Deps, store: Store, tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", width=240, height=320, duration=1)
    event = await transcode(with_rungs(deps, [360, 240, 160]), store.upload_source, source)
    # Rungs name the short side: a 240x320 portrait video is "240p" at its full size.
    assert [(r.quality, r.width, r.height) for r in event.renditions] == [
        ("240p", 240, 320),
        ("160p", 160, 214),
    ]
    await check_outputs(store, event, tmp_path, audio=True)


async def test_rotated_source_honours_display_matrix(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    # Stored 320x240 with a 90° display matrix, as phones record: shown as 240x320.
    source = make_video(tmp_path / "in.mp4", width=320, height=240, duration=1, rotate=90)
    event = await transcode(with_rungs(deps, [240, 160]), store.upload_source, source)
    assert event.width == 240 and event.height == 320
    assert [(r.width, r.height) for r in event.renditions] == [(240, 320), (160, 214)]
    out = await check_outputs(store, event, tmp_path, audio=True)
    video = video_stream(ffprobe(out / "hls_240p" / "240p.m3u8"))
    assert not video.get("side_data_list")  # pixels rotated, no matrix left to apply


async def test_odd_dimensions(deps: Deps, store: Store, tmp_path: Path) -> None:
    source = make_video(
        tmp_path / "in.mkv", width=321, height=241, duration=1, vcodec="ffv1", audio=False
    )
    event = await transcode(with_rungs(deps, [240, 160]), store.upload_source, source)
    assert [(r.width, r.height) for r in event.renditions] == [(320, 240), (214, 160)]
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in event.renditions)
    await check_outputs(store, event, tmp_path, audio=False)


async def test_source_without_audio(deps: Deps, store: Store, tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", duration=1, audio=False)
    event = await transcode(with_rungs(deps, [240]), store.upload_source, source)
    await check_outputs(store, event, tmp_path, audio=False)


async def test_source_below_smallest_rung_gets_own_size(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    source = make_video(tmp_path / "in.mp4", width=200, height=150, duration=1)
    event = await transcode(deps, store.upload_source, source)
    assert [(r.quality, r.width, r.height) for r in event.renditions] == [("150p", 200, 150)]
    await check_outputs(store, event, tmp_path, audio=True)


async def test_frame_rate_capped_and_keyframes_aligned(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    source = make_video(tmp_path / "in.mp4", duration=3, fps=90, audio=False)
    fast = dataclasses.replace(
        deps, settings=deps.settings.model_copy(update={"rungs": [240, 160], "segment_seconds": 1})
    )
    event = await transcode(fast, store.upload_source, source)
    out = await check_outputs(store, event, tmp_path, audio=False)
    durations = []
    for quality in ("240p", "160p"):
        media = m3u8.load(str(out / f"hls_{quality}" / f"{quality}.m3u8"))
        durations.append([round(s.duration, 3) for s in media.segments])
        assert (
            video_stream(ffprobe(out / f"hls_{quality}" / f"{quality}.m3u8"))["r_frame_rate"]
            == "60/1"
        )
    # Same cut points in every rung: players can switch at any segment boundary.
    assert durations[0] == durations[1] and len(durations[0]) == 3


async def test_same_job_twice_gives_same_keys(deps: Deps, store: Store, tmp_path: Path) -> None:
    source = make_video(tmp_path / "in.mp4", duration=1)
    job = await uploaded_job(TranscodeJob, store.upload_source, source)
    small = with_rungs(deps, [240, 160])
    first = await handle_transcode(job, small)
    keys_after_first = await store.keys(keys.processed_prefix(job.video_id))
    second = await handle_transcode(job, small)
    assert await store.keys(keys.processed_prefix(job.video_id)) == keys_after_first
    strip = {"created_at"}
    assert first.model_dump(exclude=strip) == second.model_dump(exclude=strip)


@pytest.mark.parametrize(
    ("size", "expected"), [((320, 240), (320, 240)), ((1920, 1080), (1280, 720))]
)
async def test_cover(
    deps: Deps,
    store: Store,
    tmp_path: Path,
    size: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    source = make_video(tmp_path / "in.mp4", width=size[0], height=size[1], duration=2)
    job = await uploaded_job(CoverJob, store.upload_source, source)
    event = await handle_cover(job, deps)
    assert event.cover_key == keys.cover_key(job.video_id)
    assert (event.width, event.height) == size
    head = await store.head(event.cover_key)
    assert head["ContentType"] == "image/jpeg"
    out = await fetch_outputs(store, job.video_id, tmp_path / "out")
    video = video_stream(ffprobe(out / "cover.jpg"))
    assert (video["width"], video["height"]) == expected


# 1 s of black, then 4 s of picture: the cover must not be black. With frequent keyframes
# the cheap keyframe-only pass finds candidates; the black ones of the fade must still not
# be chosen.
@pytest.mark.parametrize(
    ("fade_seconds", "extra_args"),
    [(1.0, []), (1.5, ["-g", "12"])],
    ids=["black_intro", "black_intro_frequent_keyframes"],
)
async def test_cover_skips_black_intro(
    deps: Deps,
    store: Store,
    tmp_path: Path,
    fade_seconds: float,
    extra_args: list[str],
) -> None:
    source = make_video(
        tmp_path / "in.mp4",
        duration=5,
        audio=False,
        extra_output_args=["-vf", f"fade=in:st=0:d={fade_seconds}:color=black", *extra_args],
    )
    job = await uploaded_job(CoverJob, store.upload_source, source)
    await handle_cover(job, deps)
    out = await fetch_outputs(store, job.video_id, tmp_path / "out")
    assert mean_luma(out / "cover.jpg") > 40


def _opening_then_picture(path: Path, opening: str, seconds: float = 2.0) -> Path:
    """``seconds`` of ``opening`` (a lavfi colour) then the moving test picture (mean luma
    about 125), one keyframe at the very start and none after (no scene-cut keyframe
    either), as a long-GOP camera or screen recording may write."""
    import subprocess

    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"color={opening}:size=320x240:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=6",
            "-filter_complex", "[0][1]concat=n=2:v=1:a=0,format=yuv420p",
            "-c:v", "libx264", "-preset", "ultrafast",
            "-g", "10000", "-keyint_min", "10000", "-sc_threshold", "0",
            str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


def keyframe_times(path: Path) -> list[float]:
    import subprocess

    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-select_streams", "v", "-skip_frame", "nokey",
            "-show_entries", "frame=pts_time", "-of", "csv=p=0", str(path),
        ],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return [float(line.strip(",")) for line in out.split()]


async def test_cover_skips_black_opening_with_a_single_keyframe(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    source = _opening_then_picture(tmp_path / "in.mp4", "black")
    assert keyframe_times(source) == [0.0]  # the cheap keyframe pass can only see black
    job = await uploaded_job(CoverJob, store.upload_source, source)
    await handle_cover(job, deps)
    out = await fetch_outputs(store, job.video_id, tmp_path / "out")
    assert mean_luma(out / "cover.jpg") > 100  # the picture (about 125), not black (16)


async def test_cover_skips_flat_title_card(deps: Deps, store: Store, tmp_path: Path) -> None:
    # A grey card as bright as the picture: only the flatness tells them apart.
    source = _opening_then_picture(tmp_path / "in.mp4", "0x808080", seconds=3)
    job = await uploaded_job(CoverJob, store.upload_source, source)
    await handle_cover(job, deps)
    out = await fetch_outputs(store, job.video_id, tmp_path / "out")
    low, high = luma_spread(out / "cover.jpg")
    assert high - low > 60, (low, high)  # the test picture spans about 40..210


async def test_cover_of_an_all_black_video_is_still_made(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    source = make_video(
        tmp_path / "in.mp4", audio=False, extra_output_args=["-vf", "negate,lutyuv=y=16"]
    )
    job = await uploaded_job(CoverJob, store.upload_source, source)
    await handle_cover(job, deps)
    out = await fetch_outputs(store, job.video_id, tmp_path / "out")
    assert mean_luma(out / "cover.jpg") < 30


def luma_spread(path: Path) -> tuple[float, float]:
    """10th and 90th percentile of the luma (signalstats YLOW, YHIGH)."""
    import subprocess

    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-f", "lavfi", "-i", f"movie={path},signalstats",
            "-show_entries", "frame_tags=lavfi.signalstats.YLOW,lavfi.signalstats.YHIGH",
            "-of", "csv=p=0",
        ],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    low, high = (float(v) for v in out.strip().splitlines()[0].split(","))
    return min(low, high), max(low, high)


def mean_luma(path: Path) -> float:
    import subprocess

    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"movie={path},signalstats",
            "-show_entries",
            "frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return float(result.stdout.strip().splitlines()[0])


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
async def test_bad_input_is_permanent_failure(
    deps: Deps, store: Store, tmp_path: Path, name: str
) -> None:
    make, reason = BAD_INPUTS[name]
    job = await uploaded_job(TranscodeJob, store.upload_source, make(tmp_path))
    with pytest.raises(PermanentError, match=reason):
        await handle_transcode(job, deps)


async def test_missing_source_is_permanent_failure(deps: Deps) -> None:
    video_id = new_video_id()
    job = CoverJob(
        video_id=video_id, job_id=uuid.uuid4(), source_key=keys.raw_key(video_id, ".mp4")
    )
    with pytest.raises(PermanentError, match="not found"):
        await handle_cover(job, deps)


@pytest.mark.parametrize("kind", [CoverJob, TranscodeJob])
async def test_source_key_of_another_video_is_refused_before_download(
    deps: Deps, store: Store, tmp_path: Path, kind: type[CoverJob | TranscodeJob]
) -> None:
    other = await uploaded_job(TranscodeJob, store.upload_source, make_video(tmp_path / "in.mp4"))
    job = kind(video_id=new_video_id(), job_id=uuid.uuid4(), source_key=other.source_key)
    timings = JobTimings()
    handler = handle_cover if isinstance(job, CoverJob) else handle_transcode
    with pytest.raises(PermanentError, match=f"not an upload of video {job.video_id}"):
        await handler(job, deps, timings=timings)
    assert "download" not in timings.stages  # refused before anything was fetched


async def test_interlaced_source_comes_out_progressive(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    source = make_video(
        tmp_path / "in.mp4",
        duration=1,
        extra_output_args=["-flags", "+ildct+ilme", "-top", "1"],
    )
    assert video_stream(ffprobe(source))["field_order"] == "tt"
    event = await transcode(with_rungs(deps, [240]), store.upload_source, source)
    out = await check_outputs(store, event, tmp_path, audio=True)
    assert video_stream(ffprobe(out / "hls_240p" / "240p.m3u8")).get("field_order") in (
        None,
        "progressive",
    )
