"""The cover image: a representative frame, not a black or blank one.

Fast seek (``-ss`` before ``-i``) to about 10 % of the duration, where intros and fades are
usually over, then the ``thumbnail`` filter picks the most representative frame of a short
window (the one closest to the window's average histogram), scaled to at most
``cover_max_width`` pixels wide with the display aspect ratio.
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


def cover_size(info: MediaInfo, max_width: int) -> tuple[int, int]:
    width = even(min(max_width, info.display_width))
    return width, even(width / info.display_aspect_ratio)


def cover_args(
    source: Path, info: MediaInfo, dest: Path, settings: WorkerSettings, *, seek: float
) -> list[str]:
    width, height = cover_size(info, settings.cover_max_width)
    fps = info.fps if info.fps > 0 else 25.0
    window = max(2, min(60, round(fps * WINDOW_SECONDS)))
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        "-ss", f"{seek:.3f}",
        "-f", info.demuxer,
        "-i", str(source),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-vf", ("yadif," if info.interlaced else "")
        + f"thumbnail={window},scale={width}:{height},setsar=1",
        "-frames:v", "1", "-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-q:v", "3",
        "-threads", str(settings.ffmpeg_threads),
        "-f", "image2", "-update", "1",
        str(dest),
    ]  # fmt: skip


async def extract_cover(
    source: Path, info: MediaInfo, dest: Path, settings: WorkerSettings
) -> Path:
    seek = info.duration * SEEK_FRACTION if info.duration > 2 * WINDOW_SECONDS else 0.0
    # Second try from the start: a wrong duration in the header can put 10 % past the end.
    for position in dict.fromkeys((seek, 0.0)):
        remove_file(dest)
        result = await run_process(
            cover_args(source, info, dest, settings, seek=position),
            time_limit=COVER_TIMEOUT,
            tool="ffmpeg-cover",
        )
        check_result(result, "extracting the cover")
        if file_size(dest) > 0:
            return dest
    raise PermanentError("no picture could be decoded from the video")
