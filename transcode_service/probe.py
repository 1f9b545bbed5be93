"""ffprobe and validation of an upload, which is treated as hostile.

ffprobe only gets the local file, ``-protocol_whitelist file,pipe`` and
``-format_whitelist`` of the allowlisted demuxers, so a playlist, concat list or other
"container" that points elsewhere is never even opened as such: it fails to probe. The
probed demuxer is then passed explicitly (``-f``) to every later ffmpeg run.

The header only describes the file; duration and frame rate are then measured from the
packets themselves (``timing.py``), and a stream that is implausibly sparse is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from shared.settings import WorkerSettings
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import ProcessResult, check_result, run_process
from transcode_service.sandbox import sandbox_for
from transcode_service.timing import ContentTiming, scan
from transcode_service.workdir import file_size

PROTOCOL_WHITELIST = "file,pipe"

# ffprobe's format_name -> the demuxer passed with -f on later runs.
ALLOWED_FORMATS: dict[str, str] = {
    "mov,mp4,m4a,3gp,3g2,mj2": "mov",
    "mp3": "mp3",  # podcasts and music: audio with an attached cover picture
    "matroska,webm": "matroska",
    "avi": "avi",
    "mpegts": "mpegts",
    "flv": "flv",
    "mpeg": "mpeg",
    "ogg": "ogg",
}
FORMAT_WHITELIST = ",".join(sorted(set(ALLOWED_FORMATS.values())))
SUPPORTED_FORMATS_TEXT = "MP4/MOV/M4A, Matroska/WebM, AVI, MPEG-TS, FLV, MPEG-PS, Ogg or MP3"

ALLOWED_VIDEO_CODECS = frozenset(
    {
        "h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg",
        "prores", "theora", "flv1", "h263", "msmpeg4v2", "msmpeg4v3", "wmv1", "wmv2", "wmv3",
        "vc1", "dnxhd", "dvvideo", "ffv1", "png",
    }
)  # fmt: skip
ALLOWED_AUDIO_CODECS = frozenset(
    {"aac", "mp3", "mp2", "ac3", "eac3", "opus", "vorbis", "flac", "alac", "dts"}
)
PROBE_TIMEOUT = 60.0
# Fraction of the header's duration that must really be there (container durations are not
# exact, e.g. audio a little longer than video).
TRUNCATION_RATIO = 0.8
INTERLACED_FIELD_ORDERS = frozenset({"tt", "bb", "tb", "bt"})


@dataclass(frozen=True)
class MediaInfo:
    format_name: str
    demuxer: str  # passed as -f to ffmpeg
    duration: float
    width: int  # coded size of the first video stream
    height: int
    sample_aspect_ratio: Fraction
    rotation: int  # display rotation in degrees, normalised to 0, 90, 180 or 270
    fps: float  # 0 when unknown
    video_codec: str
    has_audio: bool
    stream_count: int
    interlaced: bool = False  # field-coded (DV, broadcast MPEG-2): deinterlaced on output
    video_index: int = 0  # absolute stream indexes, mapped as 0:N
    audio_index: int | None = None
    audio_channels: int = 2
    audio_sample_rate: int = 48000
    # One picture for the whole file (cover art of an audio file, or a single frame): the
    # ladder loops it at a low rate instead of asking the demuxer for more.
    still: bool = False
    measured: bool = False  # duration and fps come from the packets, not the header
    header_rates: tuple[float, ...] = ()  # avg_frame_rate, r_frame_rate as the header says

    @property
    def display_aspect_ratio(self) -> Fraction:
        """Width / height as shown to people: SAR and rotation applied."""
        dar = Fraction(self.width, self.height) * self.sample_aspect_ratio
        return 1 / dar if self.rotation in (90, 270) else dar

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def display_width(self) -> int:
        return max(2, round(self.display_height * self.display_aspect_ratio))


def probe_args(path: Path) -> list[str]:
    return [
        "ffprobe", "-hide_banner", "-v", "error",
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        "-format_whitelist", FORMAT_WHITELIST,
        "-print_format", "json", "-show_format", "-show_streams",
        "-i", str(path),
    ]  # fmt: skip


async def run_ffprobe(
    args: list[str], path: Path, settings: WorkerSettings, tool: str = "ffprobe"
) -> ProcessResult:
    """A short ffprobe run on ``path`` with its output collected, sandboxed in its folder."""
    return await run_process(
        args,
        time_limit=PROBE_TIMEOUT,
        tool=tool,
        capture_stdout=True,
        sandbox=sandbox_for(settings, path.parent),
    )


async def probe(path: Path, settings: WorkerSettings, *, measure: bool = True) -> MediaInfo:
    """Header probe and validation, then (with ``measure``, or when the header states no
    duration) the packet scan that decides duration and frame rate."""
    info = await probe_header(path, settings)
    if measure or info.duration <= 0:
        timing = await scan(path, info.demuxer, info.video_index, info.audio_index, settings)
        info = apply_timing(info, timing, settings)
    return info


async def probe_header(path: Path, settings: WorkerSettings) -> MediaInfo:
    if file_size(path) == 0:
        raise PermanentError("the uploaded file is empty")
    result = await run_ffprobe(probe_args(path), path, settings)
    if result.returncode != 0:
        if result.returncode > 0:
            raise PermanentError(
                f"the file is not a readable video; supported formats: {SUPPORTED_FORMATS_TEXT}"
            )
        check_result(result, "ffprobe")
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise PermanentError("the file's metadata could not be read") from None
    return validate(data, settings)


def _fraction(value: Any) -> Fraction | None:
    try:
        num, _, den = str(value).partition(":" if ":" in str(value) else "/")
        result = Fraction(int(num), int(den or 1))
    except (ValueError, ZeroDivisionError):
        return None
    return result if result > 0 else None


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def _rotation(stream: dict[str, Any]) -> int:
    degrees: float | None = None
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            degrees = _float(side["rotation"])
    if degrees is None:
        degrees = _float((stream.get("tags") or {}).get("rotate"))
    if degrees is None:
        return 0
    return round(degrees / 90) * 90 % 360


def _header_rates(stream: dict[str, Any]) -> tuple[float, ...]:
    rates = (_fraction(stream.get(key)) for key in ("avg_frame_rate", "r_frame_rate"))
    return tuple(float(r) for r in rates if r is not None and r <= 1000)


def _fps(stream: dict[str, Any]) -> float:
    for key in ("avg_frame_rate", "r_frame_rate"):
        rate = _fraction(stream.get(key))
        # Containers without timing report absurd rates (e.g. 90000/1); treat as unknown.
        if rate is not None and rate <= 1000:
            return float(rate)
    return 0.0


def validate(data: dict[str, Any], settings: WorkerSettings) -> MediaInfo:
    """Check ffprobe's JSON against the allowlists and limits; raise ``PermanentError`` with a
    reason a person can act on."""
    fmt = data.get("format") or {}
    format_name = str(fmt.get("format_name", ""))
    demuxer = ALLOWED_FORMATS.get(format_name)
    if demuxer is None:
        raise PermanentError(
            f"unsupported file format {format_name or 'unknown'!r}; "
            f"supported formats: {SUPPORTED_FORMATS_TEXT}"
        )
    streams = [s for s in data.get("streams") or [] if isinstance(s, dict)]
    if len(streams) > settings.max_streams:
        raise PermanentError(
            f"the file has {len(streams)} streams; at most {settings.max_streams} are allowed"
        )
    videos = [s for s in streams if s.get("codec_type") == "video"]
    # Cover art of an audio file is a "video" stream of one picture: used only when there is
    # no real video, as the still picture of a podcast or a song.
    pictures = [s for s in videos if (s.get("disposition") or {}).get("attached_pic")]
    moving = [s for s in videos if s not in pictures]
    audios = [s for s in streams if s.get("codec_type") == "audio"]
    if not moving and not (pictures and audios):
        raise PermanentError(
            "the file has no video stream (an audio file needs a cover picture to be shown)"
        )
    video = (moving or pictures)[0]
    codec = str(video.get("codec_name", "unknown"))
    if codec not in ALLOWED_VIDEO_CODECS:
        raise PermanentError(f"unsupported video codec {codec!r}")
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise PermanentError("the video stream has no picture size")
    if width > settings.max_width or height > settings.max_height:
        raise PermanentError(
            f"the video is {width}x{height}; at most "
            f"{settings.max_width}x{settings.max_height} is allowed"
        )
    # Only a hint (the cover's seek point); the packet scan decides (see apply_timing).
    duration = _float(fmt.get("duration")) or _float(video.get("duration")) or 0.0
    if audios and str(audios[0].get("codec_name", "")).split("_")[0] not in (
        ALLOWED_AUDIO_CODECS | {"pcm"}
    ):
        raise PermanentError(f"unsupported audio codec {audios[0].get('codec_name')!r}")
    sar = _fraction(video.get("sample_aspect_ratio")) or Fraction(1)
    if not Fraction(1, 4) <= sar <= 4:
        sar = Fraction(1)  # a nonsensical SAR would make absurd shapes; ignore it
    return MediaInfo(
        format_name=format_name,
        demuxer=demuxer,
        duration=duration,
        width=width,
        height=height,
        sample_aspect_ratio=sar,
        rotation=_rotation(video),
        fps=_fps(video),
        video_codec=codec,
        has_audio=bool(audios),
        stream_count=len(streams),
        interlaced=str(video.get("field_order", "progressive")) in INTERLACED_FIELD_ORDERS,
        video_index=int(video.get("index", 0)),
        audio_index=int(audios[0].get("index", 0)) if audios else None,
        audio_channels=max(1, int(audios[0].get("channels") or 2)) if audios else 2,
        audio_sample_rate=max(1, int(audios[0].get("sample_rate") or 48000)) if audios else 48000,
        still=not moving,
        header_rates=_header_rates(video),
    )


def _hms(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def apply_timing(info: MediaInfo, timing: ContentTiming, settings: WorkerSettings) -> MediaInfo:
    """Duration and frame rate from the packets; refuse what is too long or too sparse to be
    a video. Raises ``PermanentError`` with a reason a person can read."""
    frames = timing.video.packets
    if frames == 0:
        raise PermanentError("the video stream contains no pictures")
    duration = timing.duration
    if duration <= 0:
        raise PermanentError("the video's duration could not be determined")
    if duration > settings.max_duration:
        # The scan stops just past the limit: "longer than", not a made-up total.
        raise PermanentError(
            f"the video is longer than {_hms(settings.max_duration)}, the most allowed"
        )
    declared = info.duration
    if declared > 0 and duration < declared * TRUNCATION_RATIO - 1.0:
        # The index (e.g. an MP4's moov at the front) survives a cut-off upload.
        raise PermanentError(
            f"the video is damaged or truncated: only {duration:.1f} s of "
            f"{declared:.1f} s could be read"
        )
    # A picture shown for a long time is fine when sound plays meanwhile (a podcast); without
    # sound, hours of one or two frames is a way to make the encoder invent them.
    audio_span = timing.audio.span if timing.audio is not None else 0.0
    if audio_span < duration / 2 and duration / frames > settings.max_frame_interval:
        raise PermanentError(
            f"the video has {frames} picture{'s' if frames > 1 else ''} in {_hms(duration)} "
            f"and {'too little' if audio_span else 'no'} sound; at most "
            f"{settings.max_frame_interval:g} s per picture on average is accepted"
        )
    measured = timing.video_fps
    # A header rate is kept when the packets confirm it (exact 30000/1001 rather than
    # 29.9701...); otherwise what the demuxer saw wins.
    confirmed = [r for r in info.header_rates if abs(r - measured) <= 0.05 * measured]
    fps = min(confirmed, key=lambda r: abs(r - measured)) if confirmed else measured
    return dataclasses.replace(
        info,
        duration=duration,
        fps=fps,
        still=info.still or frames == 1,
        measured=True,
    )
