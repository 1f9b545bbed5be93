"""Pure parts of the worker, without services: ladder maths, ffmpeg argument lists, progress
parsing, probe validation rules, work directories."""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from shared.settings import WorkerSettings
from tests.worker.media_infos import info, probed
from transcode_service.cover import cover_args, cover_passes, cover_size
from transcode_service.errors import PermanentError, RetryableError
from transcode_service.ffmpeg import ProcessResult, check_result, parse_progress_block
from transcode_service.ladder import (
    Rung,
    Variant,
    build_ladder_args,
    build_master_playlist,
    even,
    h264_level,
    measure_playlist,
    plan_ladder,
)
from transcode_service.probe import probe_args, validate
from transcode_service.storage import cache_control, content_type
from transcode_service.workdir import clean_stale, job_workdir

SETTINGS = WorkerSettings()


def sizes(rungs: list[Rung]) -> list[tuple[str, int, int]]:
    return [(r.quality, r.width, r.height) for r in rungs]


# --------------------------------------------------------------------------- ladder


def test_full_ladder_for_1080p() -> None:
    assert sizes(plan_ladder(info(), SETTINGS)) == [
        ("1080p", 1920, 1080),
        ("720p", 1280, 720),
        ("480p", 854, 480),
        ("360p", 640, 360),
        ("240p", 426, 240),
    ]


def test_no_upscale_and_rungs_only_at_or_below_source() -> None:
    assert [r.quality for r in plan_ladder(info(854, 480), SETTINGS)] == ["480p", "360p", "240p"]
    assert [r.quality for r in plan_ladder(info(1000, 700), SETTINGS)] == ["480p", "360p", "240p"]


def test_tiny_source_gets_one_rung_at_its_own_even_size() -> None:
    assert sizes(plan_ladder(info(177, 101), SETTINGS)) == [("100p", 176, 100)]


def test_portrait_and_rotation() -> None:
    portrait = sizes(plan_ladder(info(1080, 1920), SETTINGS))
    assert portrait[0] == ("1080p", 1080, 1920)
    rotated = sizes(plan_ladder(info(1920, 1080, rotation=90), SETTINGS))
    assert rotated == portrait


def test_anamorphic_source_uses_display_aspect_ratio() -> None:
    # DVD PAL widescreen: 720x576 stored, SAR 64:45 → 16:9 on screen.
    rungs = plan_ladder(info(720, 576, sar=Fraction(64, 45)), SETTINGS)
    assert sizes(rungs)[0] == ("480p", 854, 480)
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in rungs)


@pytest.mark.parametrize("value", [1, 2.9, 101, 427.0, Fraction(1001, 3)])
def test_even(value: float) -> None:
    result = even(value)
    assert result % 2 == 0 and result >= 2 and abs(result - value) <= 1.5


def test_bitrate_caps_and_levels_grow_with_size() -> None:
    rungs = plan_ladder(info(), SETTINGS)
    caps = [r.maxrate_kbps for r in rungs]
    assert caps == sorted(caps, reverse=True)
    assert 4000 < caps[0] < 6500
    assert h264_level(1920, 1080, 30) == 40
    assert h264_level(1920, 1080, 60) == 42
    assert h264_level(426, 240, 30) == 30
    assert rungs[0].codecs == "avc1.640028"


def test_ladder_args_are_hardened_and_aligned() -> None:
    source = info(1920, 1080, fps=120)
    rungs = plan_ladder(source, SETTINGS)
    args = build_ladder_args(Path("/w/source"), source, rungs, Path("/w/out"), SETTINGS)
    joined = " ".join(args)
    assert args[0] == "ffmpeg" and "-nostdin" in args
    assert "-protocol_whitelist file,pipe -f mov -i /w/source" in joined
    assert args.count("-i") == 1  # one process, one decode
    graph = args[args.index("-filter_complex") + 1]
    assert graph.startswith("[0:0]fps=60,split=5[s0][s1][s2][s3][s4]")
    assert "[s4]scale=426:240,setsar=1,format=yuv420p[v4]" in graph
    for flag in ("-sn", "-dn", "-sc_threshold", "-hls_segment_filename"):
        assert args.count(flag) == len(rungs), flag
    assert args.count("-map_metadata") == len(rungs)
    assert args.count("0:a:0") == len(rungs)
    assert "-force_key_frames expr:gte(t,n_forced*6)" in joined
    assert "-g 360 -keyint_min 360" in joined  # 60 fps x 6 s
    assert "/w/out/hls_720p/720p_%05d.ts /w/out/hls_720p/720p.m3u8" in joined
    assert "-progress pipe:1" in joined


def test_interlaced_source_is_deinterlaced() -> None:
    source = dataclasses.replace(info(720, 576, fps=25), interlaced=True)
    args = build_ladder_args(Path("s"), source, plan_ladder(source, SETTINGS), Path("o"), SETTINGS)
    assert args[args.index("-filter_complex") + 1].startswith("[0:0]yadif=deint=interlaced,")
    assert validate(probed(field_order="tt"), SETTINGS).interlaced
    assert not validate(probed(field_order="progressive"), SETTINGS).interlaced


def test_ladder_without_audio_maps_no_audio() -> None:
    source = info(audio=False)
    args = build_ladder_args(Path("s"), source, plan_ladder(source, SETTINGS), Path("o"), SETTINGS)
    assert "0:a:0" not in args and "aac" not in args
    assert args[args.index("-filter_complex") + 1].startswith("[0:0]fps=25,")  # 25 fps kept


def test_master_playlist() -> None:
    rungs = plan_ladder(info(1280, 720), SETTINGS)[:2]
    text = build_master_playlist(
        [
            Variant(r, 1000 * (i + 1), 900, f"{r.dirname}/{r.playlist_name}")
            for i, r in enumerate(rungs)
        ],
        has_audio=True,
        fps=25,
    )
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U"
    assert (
        "BANDWIDTH=1000,AVERAGE-BANDWIDTH=900,RESOLUTION=1280x720,FRAME-RATE=25.000,"
        'CODECS="avc1.64001f,mp4a.40.2"' in lines[3]
    )
    assert lines[4] == "hls_720p/720p.m3u8"


def test_measure_playlist(tmp_path: Path) -> None:
    (tmp_path / "a_00000.ts").write_bytes(b"x" * 6000)  # 48 kbit over 6 s = 8 kb/s
    (tmp_path / "a_00001.ts").write_bytes(b"x" * 1500)  # 12 kbit over 1 s = 12 kb/s
    (tmp_path / "a_00002.ts").write_bytes(b"x" * 100)  # a short tail is not the peak
    playlist = tmp_path / "a.m3u8"
    playlist.write_text(
        "#EXTM3U\n#EXTINF:6.0,\na_00000.ts\n#EXTINF:1.0,\na_00001.ts\n"
        "#EXTINF:0.04,\na_00002.ts\n#EXT-X-ENDLIST\n"
    )
    peak, average, segments = measure_playlist(playlist)
    assert peak == 12000
    assert average == pytest.approx(7600 * 8 / 7.04, abs=1)
    assert [s.name for s in segments] == ["a_00000.ts", "a_00001.ts", "a_00002.ts"]


# --------------------------------------------------------------------------- cover


def test_cover_size_and_args() -> None:
    assert cover_size(info(3840, 2160), 1280) == (1280, 720)
    assert cover_size(info(320, 240), 1280) == (320, 240)
    assert cover_size(info(1920, 1080, rotation=270), 1280) == (1080, 1920)
    args = cover_args(Path("s"), info(), Path("c.jpg"), SETTINGS, seek=1.0)
    joined = " ".join(args)
    assert "-protocol_whitelist file,pipe -ss 1.000 -f mov -i s" in joined
    assert "-map 0:v:0 -an -sn -dn" in joined and "thumbnail=25" in joined


def test_cover_keyframe_pass_decodes_keyframes_only_and_skips_black() -> None:
    args = cover_args(Path("s"), info(), Path("c.jpg"), SETTINGS, seek=4.0, kind="keyframes")
    joined = " ".join(args)
    # The cheap pass: no decoding from the previous keyframe up to the seek point.
    assert "-skip_frame nokey -ss 4.000 -noaccurate_seek -t 120 -f mov -i s" in joined
    assert "-protocol_whitelist file,pipe" in joined
    assert "lavfi.signalstats.YAVG:value=32:function=greater," in joined
    assert "normalized_entropy.normal.Y:value=0.2:function=greater,thumbnail=5" in joined


def test_cover_frame_pass_samples_a_bounded_window() -> None:
    args = cover_args(Path("s"), info(), Path("c.jpg"), SETTINGS, seek=4.0, kind="frames")
    joined = " ".join(args)
    assert "-ss 4.000 -t 10 -f mov -i s" in joined
    assert "-vf fps=4,scale=" in joined and ",thumbnail=6 " in joined
    assert "lavfi.signalstats.YAVG:value=32:function=greater," in joined


def test_cover_passes_cheapest_first() -> None:
    assert cover_passes(info()) == [
        ("keyframes", 1.0),
        ("frames", 1.0),
        ("frames", 0.0),
        ("any", 0.0),
    ]
    assert cover_passes(info(duration=1.5)) == [("keyframes", 0.0), ("frames", 0.0), ("any", 0.0)]


# --------------------------------------------------------------------------- ffmpeg runner


def test_progress_block_parsing() -> None:
    block = {"out_time_us": "2500000", "speed": "1.75x", "progress": "continue"}
    progress = parse_progress_block(block)
    assert progress.out_time == 2.5 and progress.speed == 1.75 and not progress.done
    ended = parse_progress_block({"out_time_us": "N/A", "speed": "N/A", "progress": "end"})
    assert ended.out_time == 0 and ended.speed is None and ended.done


def test_check_result_classifies_failures() -> None:
    check_result(ProcessResult(returncode=0, elapsed=1), "x")
    with pytest.raises(PermanentError, match="Invalid data"):
        check_result(ProcessResult(1, 1, stderr_tail=["x: Invalid data found"]), "decoding")
    with pytest.raises(RetryableError, match="signal 9"):
        check_result(ProcessResult(-9, 1), "decoding")
    with pytest.raises(RetryableError, match="space"):
        check_result(ProcessResult(1, 1, stderr_tail=["No space left on device"]), "writing")
    with pytest.raises(PermanentError, match="more memory"):
        check_result(
            ProcessResult(1, 1, stderr_tail=["x264 [error]: malloc of size 9 failed"]), "x"
        )
    with pytest.raises(PermanentError, match="more memory"):
        check_result(ProcessResult(1, 1, stderr_tail=["Cannot allocate memory"]), "decoding")
    # x264 under the cap in a container: the encoder does not open, with no message of its own.
    opening = "Error initializing output stream 0:0 -- Error while opening encoder for output"
    tail = [opening, "[aac @ 0x5] 2 frames left in the queue on closing"]
    with pytest.raises(PermanentError, match="more memory"):
        check_result(ProcessResult(1, 1, stderr_tail=tail), "transcoding")


# --------------------------------------------------------------------------- validation


def test_validate_accepts_a_normal_video() -> None:
    result = validate(probed(), SETTINGS)
    assert result.demuxer == "mov" and result.has_audio and result.duration == 12.5
    assert result.fps == pytest.approx(29.97, abs=0.01)
    assert validate(probed(side_data_list=[{"rotation": -90}]), SETTINGS).rotation == 270


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"format": {"format_name": "hls"}}, "unsupported file format 'hls'"),
        ({"format": {"format_name": "concat"}}, "unsupported file format"),
        ({"format": {"format_name": "tty"}}, "unsupported file format"),
        ({"width": 7681}, "at most 7680x4320"),
        ({"height": 4321}, "at most 7680x4320"),
        ({"codec_name": "gif"}, "unsupported video codec 'gif'"),
        ({"width": 0}, "no picture size"),
        ({"codec_type": "audio"}, "no video stream"),
    ],
)
def test_validate_rejects(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        validate(probed(**overrides), SETTINGS)


def test_validate_rejects_too_many_streams_and_a_picture_without_sound() -> None:
    data = probed()
    data["streams"] += [{"codec_type": "audio", "codec_name": "aac"}] * 15
    with pytest.raises(PermanentError, match="17 streams; at most 16"):
        validate(data, SETTINGS)
    art = probed(disposition={"attached_pic": 1}, codec_name="mjpeg")
    art["streams"] = art["streams"][:1]
    with pytest.raises(PermanentError, match="no video stream"):
        validate(art, SETTINGS)


def test_probe_args_are_hardened() -> None:
    joined = " ".join(probe_args(Path("/w/source")))
    assert "-protocol_whitelist file,pipe" in joined
    assert "-format_whitelist avi,flv,matroska,mov,mp3,mpeg,mpegts,ogg" in joined


def test_content_types_and_cache_headers() -> None:
    assert content_type("a/b/720p.m3u8") == "application/vnd.apple.mpegurl"
    assert content_type("a/b/720p_00001.ts") == "video/mp2t"
    assert content_type("a/cover.jpg") == "image/jpeg"
    assert "immutable" in cache_control("x.ts") and "immutable" not in cache_control("x.m3u8")


# --------------------------------------------------------------------------- work dirs


def test_workdir_removed_on_error_and_stale_ones_cleaned(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), job_workdir(tmp_path, "cover", "j1") as path:
        (path / "file").write_text("x")
        raise RuntimeError
    assert not path.exists()
    dead = tmp_path / "999999999"  # no such pid
    (dead / "transcode-j2").mkdir(parents=True)
    alive = tmp_path / "1"  # pid 1 always exists: another live worker's directory
    alive.mkdir()
    mine = tmp_path / str(os.getpid())  # left by an earlier process with our pid
    (mine / "cover-j3").mkdir(parents=True)
    clean_stale(tmp_path)
    assert not dead.exists() and not mine.exists() and alive.exists()


# --------------------------------------------------------------------------- health server


async def test_health_endpoints() -> None:
    import aiohttp

    from transcode_service.health import create_app, health_server
    from transcode_service.metrics import Metrics

    ready = False
    metrics = Metrics()
    metrics.jobs.labels(kind="cover", outcome="succeeded").inc()
    async with (
        health_server(create_app(metrics, lambda: ready, "bwrap"), "127.0.0.1", 0) as port,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session,
    ):
        async with session.get("/healthz") as response:
            assert response.status == 200
        async with session.get("/readyz") as response:
            assert response.status == 503
        ready = True
        async with session.get("/readyz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ready", "ffmpeg_sandbox": "bwrap"}
        async with session.get("/metrics") as response:
            text = await response.text()
            assert 'video_worker_jobs_total{kind="cover",outcome="succeeded"} 1.0' in text


def test_ffmpeg_threads_bounds_the_decoder_and_filters_too() -> None:
    source = info(1920, 1080)
    bounded = WorkerSettings(ffmpeg_threads=1)
    args = build_ladder_args(Path("s"), source, plan_ladder(source, bounded), Path("o"), bounded)
    first_input = args.index("-i")
    assert args[args.index("-threads") + 1] == "1" and args.index("-threads") < first_input
    assert args[args.index("-filter_complex_threads") + 1] == "1"
    # Every rung's encoder as well.
    assert args.count("-threads") == 1 + len(plan_ladder(source, bounded))
    # 0 leaves the choice to ffmpeg: no process-wide bound.
    free = WorkerSettings(ffmpeg_threads=0)
    args = build_ladder_args(Path("s"), source, plan_ladder(source, free), Path("o"), free)
    assert "-filter_complex_threads" not in args and args.index("-threads") > args.index("-i")
