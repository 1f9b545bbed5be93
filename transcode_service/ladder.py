"""The HLS ladder, as pure functions: which rungs, their sizes and bitrates, the one ffmpeg
command that encodes them all, and the master playlist.

A rung is named by the short side of its picture ("720p" is 1280x720 landscape or 720x1280
portrait), as players and video sites label portrait video; a rung is only made when the
source's short side reaches it, so nothing is upscaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from shared.keys import quality_label
from shared.settings import WorkerSettings
from transcode_service.probe import PROTOCOL_WHITELIST, MediaInfo

AUDIO_BITRATE_KBPS = 128
CRF = 23
# Constant-quality encoding capped by a VBV: rate ≈ kbps per pixel x pixels (+ a floor),
# 1.5x for high frame rates. 1080p30 ≈ 5.1 Mb/s, 720p ≈ 2.3, 480p ≈ 1.1, 240p ≈ 0.35.
KBPS_PER_PIXEL = 0.0024
KBPS_FLOOR = 100
LOW_FPS = 5.0  # below this output rate, no B-frames
# H.264 levels: (level_idc, max frame size in macroblocks, max macroblocks per second).
H264_LEVELS: tuple[tuple[int, int, int], ...] = (
    (30, 1620, 40500),
    (31, 3600, 108000),
    (32, 5120, 216000),
    (40, 8192, 245760),
    (42, 8704, 522240),
    (50, 22080, 589824),
    (51, 36864, 983040),
    (52, 36864, 2073600),
    (60, 139264, 4177920),
    (61, 139264, 8355840),
    (62, 139264, 16711680),
)


def even(value: float | Fraction) -> int:
    """The nearest even integer >= 2 (H.264 4:2:0 needs even dimensions)."""
    return max(2, round(value / 2) * 2)


@dataclass(frozen=True)
class Rung:
    size: int  # the rung's name: short side in pixels
    width: int
    height: int
    maxrate_kbps: int
    level: int  # H.264 level_idc, e.g. 31 for 3.1

    @property
    def quality(self) -> str:
        return quality_label(self.size)

    @property
    def bufsize_kbps(self) -> int:
        return self.maxrate_kbps * 2

    @property
    def dirname(self) -> str:
        return f"hls_{self.size}p"

    @property
    def playlist_name(self) -> str:
        return f"{self.size}p.m3u8"

    @property
    def codecs(self) -> str:
        return f"avc1.6400{self.level:02x}"  # High profile


def output_fps(info: MediaInfo, settings: WorkerSettings) -> float:
    """The encoded frame rate: the source's measured rate, between ``min_fps`` (still
    pictures, sparse slides: frames repeated so that every segment has a keyframe) and
    ``max_fps``. Never the header's claim alone, so the number of encoded frames stays
    about what the file really holds (or ``min_fps`` x its duration)."""
    if info.still:
        return settings.min_fps
    if info.fps <= 0:
        return 30.0 if not info.measured else settings.min_fps
    return min(max(info.fps, settings.min_fps), float(settings.max_fps))


def h264_level(width: int, height: int, fps: float) -> int:
    macroblocks = math.ceil(width / 16) * math.ceil(height / 16)
    per_second = macroblocks * max(fps, 1.0)
    for level, max_fs, max_mbps in H264_LEVELS:
        if macroblocks <= max_fs and per_second <= max_mbps:
            return level
    return H264_LEVELS[-1][0]


def rung_size(info: MediaInfo, size: int, fps: float) -> Rung:
    """Picture size of a rung: the short side is ``size``, the long side keeps the display
    aspect ratio (rotation and SAR applied), both even."""
    dar = info.display_aspect_ratio
    if dar >= 1:
        width, height = even(size * dar), size
    else:
        width, height = size, even(size / dar)
    factor = 1.5 if fps > 31 else 1.0
    maxrate = round(KBPS_FLOOR + width * height * KBPS_PER_PIXEL * factor)
    return Rung(size, width, height, maxrate, h264_level(width, height, fps))


def plan_ladder(info: MediaInfo, settings: WorkerSettings) -> list[Rung]:
    """Rungs at or below the source's short side, largest first; a source smaller than
    every rung gets a single rung at its own (even) size."""
    fps = output_fps(info, settings)
    short_side = min(info.display_height, info.display_width)
    sizes = [s for s in settings.rungs if s <= short_side]
    if not sizes:
        sizes = [max(2, short_side - short_side % 2)]
    return [rung_size(info, s, fps) for s in sorted(sizes, reverse=True)]


def audio_kbps(info: MediaInfo) -> int:
    """128 kb/s, or less where AAC cannot use it: at most 6 bits per sample and channel
    (8 kHz mono speech: 48 kb/s)."""
    channels = min(2, info.audio_channels)
    return max(8, min(AUDIO_BITRATE_KBPS, 6 * info.audio_sample_rate * channels // 1000))


def audio_encoder_args(info: MediaInfo) -> list[str]:
    """AAC at ``audio_kbps``: mono stays mono (half the encoding work for the many mono
    podcasts); more than two channels are mixed down to stereo."""
    channels = min(2, info.audio_channels)
    return ["-c:a", "aac", "-b:a", f"{audio_kbps(info)}k", "-ac", str(channels)]


@dataclass(frozen=True)
class EncodedAudio:
    """Audio encoded before the ladder runs (a chunk's piece of the whole file's AAC, see
    chunk_audio.py): every rung copies its packets instead of encoding the audio again.
    ``offset`` is where its first packet falls on the ladder's timeline, in seconds."""

    path: Path
    offset: float
    format: str = "nut"


def rate_text(fps: float) -> str:
    """A frame rate as ffmpeg's exact rational: 29.97002997 -> "30000/1001"."""
    return str(Fraction(fps).limit_denominator(1001))


def keyframe_interval(fps: float, segment_seconds: int) -> int:
    return max(1, round(fps * segment_seconds))


def still_picture_args(source: Path, info: MediaInfo, dest: Path) -> list[str]:
    """Decode the one picture of a still source (cover art, single frame) to a PNG that the
    ladder then loops: a demuxer asked for more frames of such a stream has none to give
    until the end of the file, which would hold back every output and all progress."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y",
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        "-f", info.demuxer,
        "-i", str(source),
        "-map", f"0:{info.video_index}", "-frames:v", "1", "-an", "-sn", "-dn",
        "-c:v", "png", "-f", "image2", "-update", "1",
        str(dest),
    ]  # fmt: skip


def build_ladder_args(
    source: Path,
    info: MediaInfo,
    rungs: list[Rung],
    out_dir: Path,
    settings: WorkerSettings,
    still_picture: Path | None = None,
    encoded_audio: EncodedAudio | None = None,
) -> list[str]:
    """One ffmpeg process for the whole ladder: decode once, ``split``, scale per rung, one
    HLS output per rung. Keyframes are forced at every segment boundary with scene-cut
    detection off, and every rung sees the same frames, so segments align across rungs.

    Frames come out at a constant ``output_fps`` (the ``fps`` filter, which duplicates or
    drops by real timestamps). A still source (``info.still``) is given as
    ``still_picture``: that PNG is looped at ``min_fps`` for the measured duration, beside
    the source's audio, so the first segments are written at once. With ``encoded_audio``
    the rungs carry a copy of that audio instead of the source's, encoded per rung."""
    fps = output_fps(info, settings)
    seg = settings.segment_seconds
    gop = keyframe_interval(fps, seg)
    inputs = ["-protocol_whitelist", PROTOCOL_WHITELIST]
    chain = []
    if still_picture is not None:
        inputs += [
            "-f", "image2", "-loop", "1", "-framerate", rate_text(fps),
            "-t", f"{info.duration:.3f}", "-i", str(still_picture),
            "-protocol_whitelist", PROTOCOL_WHITELIST,
        ]  # fmt: skip
        video_in, media_in = "0:v:0", 1
    else:
        video_in, media_in = f"0:{info.video_index}", 0
        if info.interlaced:
            # HLS players show progressive frames; combing would be visible on every rung.
            chain.append("yadif=deint=interlaced")
        chain.append(f"fps={rate_text(fps)}")
    inputs += ["-f", info.demuxer, "-i", str(source)]
    if settings.ffmpeg_threads:
        # The whole process, not only the encoders: the decoder and the filter graph
        # otherwise start a thread per core each, and a worker sized for one core (a
        # container's CPU limit) would be throttled or crowd its neighbours.
        threads = str(settings.ffmpeg_threads)
        inputs = ["-threads", threads, *inputs, "-filter_complex_threads", threads]
    audio_in = f"{media_in}:{'a:0' if info.audio_index is None else info.audio_index}"
    audio_codec = audio_encoder_args(info)
    if encoded_audio is not None:
        inputs += [
            "-protocol_whitelist", PROTOCOL_WHITELIST,
            "-itsoffset", f"{encoded_audio.offset:.6f}",
            "-f", encoded_audio.format, "-i", str(encoded_audio.path),
        ]  # fmt: skip
        audio_in, audio_codec = f"{media_in + 1}:a:0", ["-c:a", "copy"]
    labels = "".join(f"[s{i}]" for i in range(len(rungs)))
    chain.append(f"split={len(rungs)}{labels}")
    graph = [f"[{video_in}]{','.join(chain)}"]
    for i, rung in enumerate(rungs):
        graph.append(f"[s{i}]scale={rung.width}:{rung.height},setsar=1,format=yuv420p[v{i}]")

    args = [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning", "-y",
        "-progress", "pipe:1",
        *inputs,
        "-filter_complex", ";".join(graph),
    ]  # fmt: skip
    for i, rung in enumerate(rungs):
        rung_dir = out_dir / rung.dirname
        args += ["-map", f"[v{i}]"]
        if info.has_audio:
            args += ["-map", audio_in]
        args += [
            "-c:v", "libx264", "-preset", settings.x264_preset,
            "-profile:v", "high", "-level:v", f"{rung.level / 10:.1f}",
            "-crf", str(CRF),
            "-maxrate", f"{rung.maxrate_kbps}k", "-bufsize", f"{rung.bufsize_kbps}k",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-force_key_frames", f"expr:gte(t,n_forced*{seg})",
        ]  # fmt: skip
        if fps < LOW_FPS:
            # At a frame or two per second B-frames delay the video by seconds against the
            # audio, and the segment muxer then writes negative timestamps.
            args += ["-bf", "0"]
        if info.has_audio:
            args += audio_codec
        args += [
            "-sn", "-dn", "-map_metadata", "-1", "-map_chapters", "-1",
            "-threads", str(settings.ffmpeg_threads),
            "-max_muxing_queue_size", "1024",
            "-f", "hls", "-hls_time", str(seg), "-hls_playlist_type", "vod",
            "-hls_list_size", "0", "-hls_flags", "independent_segments",
            "-hls_segment_type", "mpegts",
            "-hls_segment_filename", str(rung_dir / f"{rung.size}p_%05d.ts"),
            str(rung_dir / rung.playlist_name),
        ]  # fmt: skip
    return args


@dataclass(frozen=True)
class Variant:
    rung: Rung
    bandwidth: int  # peak segment bit rate, bits/s
    average_bandwidth: int
    uri: str  # relative to the master playlist


def read_media_playlist(playlist: Path) -> list[tuple[str, float]]:
    """(segment file name, #EXTINF duration) of a media playlist ffmpeg wrote."""
    entries: list[tuple[str, float]] = []
    pending: float | None = None
    for line in playlist.read_text().splitlines():
        line = line.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line[len("#EXTINF:") :].split(",")[0])
        elif line and not line.startswith("#") and pending is not None:
            entries.append((line, pending))
            pending = None
    return entries


def measure_playlist(playlist: Path) -> tuple[int, int, list[Path]]:
    """(peak, average) bit rate of a media playlist's segments, measured from the files,
    and the segment paths. Peak ignores a short final segment unless it is the only one,
    because a fraction of a second of data says little about the sustained rate."""
    durations = [
        (seconds, playlist.parent / name) for name, seconds in read_media_playlist(playlist)
    ]
    if not durations:
        raise ValueError(f"{playlist.name} lists no segments")
    rates = [(d, p.stat().st_size * 8 / d) for d, p in durations if d > 0 and p.exists()]
    longest = max(d for d, _ in durations)
    considered = [r for d, r in rates if d >= min(1.0, longest)] or [r for _, r in rates]
    total_bits = sum(p.stat().st_size * 8 for _, p in durations)
    total_time = sum(d for d, _ in durations) or 1.0
    peak = max(considered) if considered else total_bits / total_time
    return (
        max(1, math.ceil(peak)),
        max(1, math.ceil(total_bits / total_time)),
        [p for _, p in durations],
    )


def build_master_playlist(variants: list[Variant], *, has_audio: bool, fps: float) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in variants:
        codecs = v.rung.codecs + (",mp4a.40.2" if has_audio else "")
        lines.append(
            f"#EXT-X-STREAM-INF:BANDWIDTH={v.bandwidth},AVERAGE-BANDWIDTH={v.average_bandwidth},"
            f'RESOLUTION={v.rung.width}x{v.rung.height},FRAME-RATE={fps:.3f},CODECS="{codecs}"'
        )
        lines.append(v.uri)
    return "\n".join(lines) + "\n"
