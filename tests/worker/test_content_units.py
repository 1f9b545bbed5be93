"""Pure logic of "work bounded by what the file really contains": packet timings, the
plausibility rules, the output frame rate, the CPU budget and the stall check."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from shared.settings import WorkerSettings
from tests.worker.media_infos import info, probed
from transcode_service.budget import Watchdog, cpu_budget
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import Progress
from transcode_service.ladder import audio_kbps, build_ladder_args, output_fps, plan_ladder
from transcode_service.probe import apply_timing, validate
from transcode_service.timing import ContentTiming, StreamTiming, summarize_packets

SETTINGS = WorkerSettings()


def packets(video: list[str], audio: list[str]) -> list[bytes]:
    return [f"0,{line}".encode() for line in video] + [f"1,{line}".encode() for line in audio]


def test_packets_summarised_per_mapped_stream() -> None:
    lines = [
        b"0,0.000000,0.000000,0.040000\n",
        b"0,0.080000,0.040000,0.040000",  # B-frame order: pts out of order
        b"0,0.040000,0.080000,0.040000",
        b"1,-0.021000,-0.021000,0.021000,",  # trailing field (side data) ignored
        b"1,2.500000,2.500000,0.021000",
        b"2,99.000000,99.000000,1.000000",  # a subtitle stream: not mapped, ignored
        b"0,N/A,0.120000,0.040000",  # no pts: dts used
        b"garbage",
    ]
    timing = summarize_packets(lines, video_index=0, audio_index=1)
    assert timing.video.packets == 4
    assert timing.video.span == pytest.approx(0.16)
    assert timing.video_fps == pytest.approx(25)
    assert timing.audio is not None and timing.audio.span == pytest.approx(2.542)
    assert timing.duration == pytest.approx(2.542)  # from the audio's start to its end


def test_attached_picture_counts_as_one_frame_without_time() -> None:
    timing = summarize_packets(packets(["N/A,N/A,N/A"], ["0.0,0.0,600.0"]), 0, 1)
    assert timing.video.packets == 1 and timing.video.span == 0
    assert timing.video_fps == 0 and timing.duration == 600


def timing(frames: int, video_span: float, audio_span: float | None = None) -> ContentTiming:
    video = StreamTiming(frames, 0.0, video_span)
    audio = None if audio_span is None else StreamTiming(100, 0.0, audio_span)
    return ContentTiming(video, audio)


def test_frame_rate_bomb_is_refused_with_a_readable_reason() -> None:
    header = validate(probed(avg_frame_rate="120/1"), SETTINGS)
    with pytest.raises(PermanentError) as caught:
        apply_timing(header, timing(2, 21500.008), SETTINGS)
    assert str(caught.value) == (
        "the video has 2 pictures in 5 h 58 min and no sound; "
        "at most 30 s per picture on average is accepted"
    )
    # A second of sound does not make six hours of two pictures a video.
    with pytest.raises(PermanentError, match="too little sound"):
        apply_timing(header, timing(2, 21500, audio_span=1), SETTINGS)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (timing(0, 0), "contains no pictures"),
        (timing(1, 0), "duration could not be determined"),
        (timing(25 * 21601, 21601), "longer than 6 h 00 min, the most allowed"),
    ],
)
def test_implausible_content_is_refused(content: ContentTiming, reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        apply_timing(validate(probed(), SETTINGS), content, SETTINGS)


def test_still_picture_with_sound_is_a_podcast() -> None:
    header = validate(probed(disposition={"attached_pic": 1}, codec_name="png"), SETTINGS)
    assert header.still
    podcast = apply_timing(header, timing(1, 0, audio_span=600), SETTINGS)
    assert podcast.duration == 600 and podcast.still and podcast.measured
    assert output_fps(podcast, SETTINGS) == SETTINGS.min_fps
    # One frame of a normal video stream with long sound is a still picture too.
    single = apply_timing(validate(probed(), SETTINGS), timing(1, 0.04, 600), SETTINGS)
    assert single.still and single.duration == 600


def test_frame_rate_from_packets_header_kept_only_when_confirmed() -> None:
    header = validate(probed(avg_frame_rate="30000/1001", r_frame_rate="120/1"), SETTINGS)
    confirmed = apply_timing(header, timing(300, 10.01), SETTINGS)
    assert confirmed.fps == pytest.approx(30000 / 1001, abs=1e-9)  # exact header rate
    lying = apply_timing(
        validate(probed(avg_frame_rate="120/1"), SETTINGS), timing(250, 10), SETTINGS
    )
    assert lying.fps == pytest.approx(25)
    assert output_fps(lying, SETTINGS) == pytest.approx(25)
    # Sparse slides (one picture every 4 s) are encoded at min_fps, not invented at 30.
    slides = apply_timing(header, timing(15, 60), SETTINGS)
    assert output_fps(slides, SETTINGS) == SETTINGS.min_fps


def test_still_ladder_loops_the_picture_beside_the_source_audio() -> None:
    podcast = dataclasses.replace(info(1400, 1400, fps=0), still=True, audio_index=0, duration=600)
    rungs = plan_ladder(podcast, SETTINGS)
    args = build_ladder_args(
        Path("/w/source"), podcast, rungs, Path("/w/out"), SETTINGS, Path("/w/still.png")
    )
    joined = " ".join(args)
    assert "-f image2 -loop 1 -framerate 1 -t 600.000 -i /w/still.png" in joined
    assert "-protocol_whitelist file,pipe -f mov -i /w/source" in joined
    assert args[args.index("-filter_complex") + 1].startswith("[0:v:0]split=")
    assert args.count("1:0") == len(rungs)  # the source's audio stream, by index
    assert "-g 6 -keyint_min 6" in joined  # one keyframe per 6 s segment at 1 fps


def test_cpu_budget_follows_content_not_header() -> None:
    short = info(1920, 1080, fps=30, duration=10)
    rungs = plan_ladder(short, SETTINGS)
    ten_seconds = cpu_budget(short, rungs, SETTINGS)
    hour = cpu_budget(dataclasses.replace(short, duration=3600), rungs, SETTINGS)
    assert SETTINGS.cpu_budget_base < ten_seconds < hour
    # 10 s of 1080p30 on five rungs: about 1.7 gigapixels (~105 s) and 10 s of sound
    # encoded per rung (5 x 10 x 0.5 = 25 s) on top of the base.
    assert ten_seconds - SETTINGS.cpu_budget_base == pytest.approx(130, rel=0.1)
    # Ten minutes of a small still picture with sound: the sound's share, little else.
    podcast = dataclasses.replace(info(96, 96, fps=0), still=True, duration=600)
    sound = SETTINGS.cpu_seconds_per_audio_second * 600
    picture = cpu_budget(podcast, plan_ladder(podcast, SETTINGS), SETTINGS) - sound
    assert picture - SETTINGS.cpu_budget_base < 40


def test_watchdog_stops_on_cpu_budget_and_on_a_stall() -> None:
    dog = Watchdog(budget=10, min_speed=0.1, window=60, started=0.0)
    dog.on_progress(Progress(out_time=0.0, speed=None, done=False))
    assert dog.check(now=30) is None  # inside the first window
    dog.cpu_seconds = 11
    assert "CPU budget of 10 s" in (dog.check(now=31) or "")

    stalled = Watchdog(budget=1e9, min_speed=0.1, window=60, started=0.0)
    stalled._media_times.append((0.0, 0.0))
    stalled._media_times.append((10.0, 20.0))  # fast at first
    stalled._media_times.append((70.0, 23.0))  # then 3 s of media in 60 s
    assert stalled.check(now=69) is None
    assert "processing stalled" in (stalled.check(now=80) or "")

    moving = Watchdog(budget=1e9, min_speed=0.1, window=60, started=0.0)
    moving._media_times.extend([(0.0, 0.0), (30.0, 5.0), (70.0, 12.0)])
    assert moving.check(now=80) is None


def test_header_duration_far_beyond_the_packets_is_a_truncated_upload() -> None:
    header = validate(probed(format={"duration": "6.0"}), SETTINGS)
    with pytest.raises(PermanentError, match=r"truncated: only 2.0 s of 6.0 s could be read"):
        apply_timing(header, timing(50, 2.0, 2.0), SETTINGS)
    assert apply_timing(header, timing(145, 5.8, 6.0), SETTINGS).duration == 6.0


def test_audio_bit_rate_fits_what_aac_can_carry() -> None:
    assert audio_kbps(info()) == 128  # 48 kHz: the ladder's rate
    speech = dataclasses.replace(info(), audio_channels=1, audio_sample_rate=8000)
    assert audio_kbps(speech) == 48  # 6 bits per sample: more would be clamped with a warning
    surround = dataclasses.replace(info(), audio_channels=6, audio_sample_rate=44100)
    assert audio_kbps(surround) == 128
