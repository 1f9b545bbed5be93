"""What a file really contains in time, measured from its packets instead of its header.

Headers lie or say nothing: a MediaRecorder WebM or a live-written fragmented MP4 states no
duration, and a crafted Matroska file can claim 120 fps for a stream of two frames six hours
apart. ffprobe lists every packet of the mapped streams (demuxing only, no decoding, so it
costs little next to an encode) and the duration, frame count and frame rate are taken from
those timestamps. The scan is bounded three ways: ``-read_intervals`` stops it just past
``worker.max_duration`` of media, a wall-clock limit stops a slow demuxer, and the listing's
size is capped (about 25 bytes a packet), so a hostile stream cannot make it unbounded.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.settings import WorkerSettings
from transcode_service.ffmpeg import check_result, run_process
from transcode_service.sandbox import sandbox_for

# A 6 h source at 60 fps with 48 kHz AAC is about 2.3 million packets (~55 MB of listing).
SCAN_OUTPUT_LIMIT = 128 * 1024 * 1024


@dataclass(frozen=True)
class StreamTiming:
    """The packets of one stream: how many, and the span their timestamps cover."""

    packets: int = 0
    start: float | None = None  # earliest timestamp, seconds
    end: float | None = None  # latest timestamp + that packet's duration

    @property
    def span(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class ContentTiming:
    video: StreamTiming
    audio: StreamTiming | None

    @property
    def start(self) -> float | None:
        starts = [s.start for s in self._streams if s.start is not None]
        return min(starts) if starts else None

    @property
    def duration(self) -> float:
        """From the first timestamp of any mapped stream to the end of the last: what the
        player will play, and what ffmpeg's ``out_time`` counts towards."""
        start = self.start
        ends = [s.end for s in self._streams if s.end is not None]
        if start is None or not ends:
            return 0.0
        return max(0.0, max(ends) - start)

    @property
    def video_fps(self) -> float:
        """Average frame rate of the video stream as packets per second of its span; 0 for a
        single picture (or a stream without timestamps)."""
        span = self.video.span
        if self.video.packets < 2 or span <= 0:
            return 0.0
        return self.video.packets / span

    @property
    def _streams(self) -> list[StreamTiming]:
        return [self.video] if self.audio is None else [self.video, self.audio]


def _seconds(value: str) -> float | None:
    try:
        result = float(value)
    except ValueError:
        return None  # "N/A"
    return result if math.isfinite(result) else None


def summarize_packets(
    lines: Iterable[bytes], video_index: int, audio_index: int | None
) -> ContentTiming:
    """Fold ffprobe's ``stream_index,pts_time,dts_time,duration_time`` CSV lines into
    per-stream timings. A packet without pts falls back to dts; one with neither (an
    attached cover picture) still counts as a frame."""
    counts = {video_index: 0, audio_index: 0}
    starts: dict[int | None, float] = {}
    ends: dict[int | None, float] = {}
    for raw in lines:
        fields = raw.decode(errors="replace").strip().split(",")
        if len(fields) < 4:
            continue
        try:
            index: int | None = int(fields[0])
        except ValueError:
            continue
        if index not in counts or index is None:
            continue
        counts[index] += 1
        at = _seconds(fields[1])
        if at is None:
            at = _seconds(fields[2])
        if at is None:
            continue
        end = at + max(0.0, _seconds(fields[3]) or 0.0)
        starts[index] = min(starts.get(index, at), at)
        ends[index] = max(ends.get(index, end), end)

    def stream(index: int) -> StreamTiming:
        return StreamTiming(counts[index], starts.get(index), ends.get(index))

    return ContentTiming(
        video=stream(video_index),
        audio=stream(audio_index) if audio_index is not None else None,
    )


def scan_args(path: Path, demuxer: str, max_duration: float) -> list[str]:
    return [
        "ffprobe", "-hide_banner", "-v", "error",
        "-protocol_whitelist", "file,pipe",
        "-f", demuxer,
        # Read from the start up to just past the longest allowed video; a packet beyond
        # that is enough to know the file is too long.
        "-read_intervals", f"%+{math.ceil(max_duration) + 1}",
        "-show_entries", "packet=stream_index,pts_time,dts_time,duration_time",
        "-of", "csv=p=0",
        "-i", str(path),
    ]  # fmt: skip


async def scan(
    path: Path,
    demuxer: str,
    video_index: int,
    audio_index: int | None,
    settings: WorkerSettings,
) -> ContentTiming:
    """List the packets of the mapped streams and measure them (see the module docstring)."""
    result = await run_process(
        scan_args(path, demuxer, settings.max_duration),
        time_limit=settings.scan_timeout,
        tool="ffprobe-packets",
        capture_stdout=True,
        stdout_limit=SCAN_OUTPUT_LIMIT,
        sandbox=sandbox_for(settings, path.parent),
    )
    if result.returncode < 0 or not result.stdout:
        check_result(result, "reading the file's packets")
    # A demuxer error part-way (a truncated upload) still leaves the packets read so far;
    # the ladder's completeness check judges whether that is enough.
    # Parsing a few million lines takes a second or two: keep the event loop free.
    return await asyncio.to_thread(
        summarize_packets, io.BytesIO(result.stdout), video_index, audio_index
    )
