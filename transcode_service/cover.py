"""The cover image: a representative frame, not a black or blank one.

Seek to about 10 % of the duration, where intros and fades are usually over. First try the
cheap way: decode only keyframes from there (``-skip_frame nokey``), drop near-black ones
(``signalstats`` average luma), and let ``thumbnail`` pick the most representative of a few.
That avoids decoding every frame from the previous keyframe up to the seek point, which on
long-GOP sources is most of the cost (about 0.25 s instead of 0.85 s for a 1080p clip with
8 s GOPs), and a cover is wanted within a second or so of upload. If no bright keyframe is
found (e.g. a short clip whose only keyframe is a black first frame), fall back to an
accurate seek and ``thumbnail`` over a one-second window of every frame, then to the start.
The picture is scaled to at most ``cover_max_width`` pixels wide with the display aspect ratio.
"""

from __future__ import annotations

from pathlib import Path

from shared.settings import WorkerSettings
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import check_result, run_process
from transcode_service.ladder import even
from transcode_service.probe import PROTOCOL_WHITELIST, MediaInfo
from transcode_service.workdir import file_size, remove_file

SEEK_FRACTION = 0.10
WINDOW_SECONDS = 1.0
COVER_TIMEOUT = 120.0
KEYFRAME_CANDIDATES = 5
# Average luma (0-255, limited range starts at 16) at or below which a keyframe counts as black.
BLACK_LUMA = 32
# How much of the input the keyframe pass may read before giving up on finding a candidate.
KEYFRAME_SCAN_SECONDS = 120


def cover_size(info: MediaInfo, max_width: int) -> tuple[int, int]:
    width = even(min(max_width, info.display_width))
    return width, even(width / info.display_aspect_ratio)


def cover_args(
    source: Path,
    info: MediaInfo,
    dest: Path,
    settings: WorkerSettings,
    *,
    seek: float,
    keyframes_only: bool = False,
) -> list[str]:
    width, height = cover_size(info, settings.cover_max_width)
    deinterlace = "yadif," if info.interlaced else ""
    if keyframes_only:
        seeking = [
            "-skip_frame", "nokey", "-ss", f"{seek:.3f}", "-noaccurate_seek",
            "-t", str(KEYFRAME_SCAN_SECONDS),
        ]  # fmt: skip
        pick = (
            f"signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG:value={BLACK_LUMA}"
            f":function=greater,thumbnail={KEYFRAME_CANDIDATES}"
        )
    else:
        fps = info.fps if info.fps > 0 else 25.0
        seeking = ["-ss", f"{seek:.3f}"]
        pick = f"thumbnail={max(2, min(60, round(fps * WINDOW_SECONDS)))}"
    if info.still:
        seeking = []  # one picture (cover art of an MP3/M4A): any seek, even to 0, skips it
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        *seeking,
        "-f", info.demuxer,
        "-i", str(source),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-vf", f"{deinterlace}{pick},scale={width}:{height},setsar=1",
        "-frames:v", "1", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3",
        "-threads", str(settings.ffmpeg_threads),
        "-f", "image2", "-update", "1",
        str(dest),
    ]  # fmt: skip


async def extract_cover(
    source: Path, info: MediaInfo, dest: Path, settings: WorkerSettings
) -> Path:
    seek = info.duration * SEEK_FRACTION if info.duration > 2 * WINDOW_SECONDS else 0.0
    # Cheapest first; the last try is from the start, because a wrong duration in the header
    # can put 10 % past the end.
    attempts = [(seek, True), *dict.fromkeys([(seek, False), (0.0, False)])]
    if info.still:
        attempts = [(0.0, False)]
    for position, keyframes_only in attempts:
        remove_file(dest)
        result = await run_process(
            cover_args(source, info, dest, settings, seek=position, keyframes_only=keyframes_only),
            time_limit=COVER_TIMEOUT,
            tool="ffmpeg-cover",
            max_memory_mb=settings.ffmpeg_max_memory_mb,
        )
        if keyframes_only and result.returncode != 0:
            continue  # only an optimisation: the accurate pass decides
        check_result(result, "extracting the cover")
        if file_size(dest) > 0:
            return dest
    raise PermanentError("no picture could be decoded from the video")
