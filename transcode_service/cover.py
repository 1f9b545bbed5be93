"""The cover image: a representative frame, not a black, blank or half-faded one.

A frame is a candidate when its average luma is above ``BLACK_LUMA`` (``signalstats``) and
its luma histogram is not a single spike (``entropy`` above ``FLAT_ENTROPY``: a flat colour
card has 0, a real picture 0.4 and more); of the candidates, ffmpeg's ``thumbnail`` filter
picks the most representative (closest to their average histogram), so one odd frame of a
fade or a flash is not chosen either. The analysis runs on the picture already scaled to
the cover's size, which keeps it cheap.

Passes, cheapest first, each only when the previous found no candidate:

1. From about 10 % of the duration, where intros are usually over, decode only keyframes
   (``-skip_frame nokey``). That avoids decoding every frame from the previous keyframe up
   to the seek point, which on long-GOP sources is most of the cost (about 0.25 s instead
   of 0.85 s for a 1080p clip with 8 s GOPs), and a cover is wanted within a second or so.
2. From the same point, every frame, sampled at ``SAMPLE_FPS``, for up to
   ``SCAN_SECONDS``: a clip whose only keyframe is a black first frame.
3. The same from the start (a wrong duration in the header can put 10 % past the end).
4. Anything from the start: a video that is black or flat throughout still gets a cover.

The picture is scaled to at most ``cover_max_width`` pixels wide with the display aspect ratio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from shared.settings import WorkerSettings
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import check_result, run_process
from transcode_service.ladder import even
from transcode_service.probe import PROTOCOL_WHITELIST, MediaInfo
from transcode_service.sandbox import sandbox_for
from transcode_service.workdir import file_size, remove_file

SEEK_FRACTION = 0.10
COVER_TIMEOUT = 120.0
KEYFRAME_CANDIDATES = 5
# How much of the input the keyframe pass may read before giving up on finding a candidate.
KEYFRAME_SCAN_SECONDS = 120
# The frame passes look at this many frames per second of video, for at most SCAN_SECONDS,
# and stop as soon as WINDOW_CANDIDATES candidates (1.5 s of picture) were seen.
SAMPLE_FPS = 4
SCAN_SECONDS = 10
WINDOW_CANDIDATES = 6
# Average luma (0-255, limited range starts at 16) at or below which a frame counts as black.
BLACK_LUMA = 32
# Normalised entropy of the luma histogram (0-1) at or below which a frame counts as flat.
FLAT_ENTROPY = 0.2
# The last resort decodes one second from the start.
LAST_RESORT_SECONDS = 1.0

CoverPass = Literal["keyframes", "frames", "any"]


def cover_size(info: MediaInfo, max_width: int) -> tuple[int, int]:
    width = even(min(max_width, info.display_width))
    return width, even(width / info.display_aspect_ratio)


def candidate_filter() -> str:
    """Drop black and flat frames (``metadata=select`` passes only frames whose value
    matches)."""
    return (
        f"signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG:value={BLACK_LUMA}"
        ":function=greater,"
        f"entropy,metadata=mode=select:key=lavfi.entropy.normalized_entropy.normal.Y"
        f":value={FLAT_ENTROPY}:function=greater"
    )


def cover_args(
    source: Path,
    info: MediaInfo,
    dest: Path,
    settings: WorkerSettings,
    *,
    seek: float,
    kind: CoverPass = "any",
) -> list[str]:
    width, height = cover_size(info, settings.cover_max_width)
    scale = f"{'yadif,' if info.interlaced else ''}scale={width}:{height},setsar=1"
    if kind == "keyframes":
        seeking = [
            "-skip_frame", "nokey", "-ss", f"{seek:.3f}", "-noaccurate_seek",
            "-t", str(KEYFRAME_SCAN_SECONDS),
        ]  # fmt: skip
        pick = f"{scale},{candidate_filter()},thumbnail={KEYFRAME_CANDIDATES}"
    elif kind == "frames":
        seeking = ["-ss", f"{seek:.3f}", "-t", str(SCAN_SECONDS)]
        pick = f"fps={SAMPLE_FPS},{scale},{candidate_filter()},thumbnail={WINDOW_CANDIDATES}"
    else:
        fps = info.fps if info.fps > 0 else 25.0
        seeking = ["-ss", f"{seek:.3f}"]
        pick = f"{scale},thumbnail={max(2, min(60, round(fps * LAST_RESORT_SECONDS)))}"
    if info.still:
        seeking = []  # one picture (cover art of an MP3/M4A): any seek, even to 0, skips it
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        *seeking,
        "-f", info.demuxer,
        "-i", str(source),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-vf", pick,
        "-frames:v", "1", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3",
        "-threads", str(settings.ffmpeg_threads),
        "-f", "image2", "-update", "1",
        str(dest),
    ]  # fmt: skip


def cover_passes(info: MediaInfo) -> list[tuple[CoverPass, float]]:
    if info.still:
        return [("any", 0.0)]  # one picture: nothing to choose from
    seek = info.duration * SEEK_FRACTION if info.duration > 2 * LAST_RESORT_SECONDS else 0.0
    passes: list[tuple[CoverPass, float]] = [
        ("keyframes", seek),
        ("frames", seek),
        ("frames", 0.0),
        ("any", 0.0),
    ]
    return list(dict.fromkeys(passes))


async def extract_cover(
    source: Path, info: MediaInfo, dest: Path, settings: WorkerSettings
) -> Path:
    passes = cover_passes(info)
    for kind, position in passes:
        remove_file(dest)
        result = await run_process(
            cover_args(source, info, dest, settings, seek=position, kind=kind),
            time_limit=COVER_TIMEOUT,
            tool="ffmpeg-cover",
            sandbox=sandbox_for(settings, dest.parent),
        )
        if kind != "any" and result.returncode != 0:
            continue  # the filtered passes are preferences: the last one decides
        check_result(result, "extracting the cover")
        if file_size(dest) > 0:
            return dest
    raise PermanentError("no picture could be decoded from the video")
