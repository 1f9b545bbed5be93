"""The bytes of the source a chunk needs, so that a chunk job downloads its share of the
file rather than the whole of it.

Only for the MP4/QuickTime family, where the demuxer finds every packet through the index
(``moov``) and so never reads what lies between: the video's job lists the packets
(``pos``, ``size``, key flag, time), and a chunk's ranges are

- the file's head up to ``HEAD_BYTES`` past the first packet: ``ftyp``/``moov`` of a
  fast-start file and the packets ffmpeg reads when it opens the file (stream parameters);
- its tail from the end of the last packet: the ``moov`` of a file written without
  fast start;
- the packets from the video keyframe at or before the chunk's start (decoding begins
  there) to the first video keyframe ``TAIL_SECONDS`` after its end (frames reordered past
  the border, the filter's look-ahead).

The chunk writes them at their offsets into a sparse file of the source's size and runs
the usual probe and ladder on it. Other containers (Matroska/WebM, MPEG-TS, ...) are read
by scanning, so their chunks download the whole source, as do chunks whose video's job
could not list the packets.
"""

from __future__ import annotations

import asyncio
import io
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import structlog

from shared.settings import WorkerSettings
from transcode_service.chunk_plan import ChunkPlan
from transcode_service.ffmpeg import run_process
from transcode_service.probe import PROTOCOL_WHITELIST, MediaInfo
from transcode_service.sandbox import sandbox_for
from transcode_service.timing import SCAN_OUTPUT_LIMIT
from transcode_service.workdir import file_size

log = structlog.get_logger(__name__)

RANGED_DEMUXERS = frozenset({"mov"})
HEAD_BYTES = 8 * 1024 * 1024
TAIL_SECONDS = 2.0
ByteRange = tuple[int, int]  # [start, end) in bytes


@dataclass(frozen=True, slots=True)  # slots: 40 of ~210 bytes less, a million times
class Packet:
    stream: int
    time: float  # presentation time, seconds
    pos: int
    size: int
    key: bool


def listing_args(path: Path, demuxer: str) -> list[str]:
    return [
        "ffprobe", "-hide_banner", "-v", "error",
        "-protocol_whitelist", PROTOCOL_WHITELIST, "-f", demuxer,
        "-show_entries", "packet=stream_index,pts_time,dts_time,pos,size,flags",
        "-of", "csv=p=0",
        "-i", str(path),
    ]  # fmt: skip


def parse_packets(lines: Iterable[bytes]) -> list[Packet]:
    """``stream_index,pts_time,dts_time,size,pos,flags`` lines (ffprobe's order); packets
    without a position or a time are left out."""
    packets = []
    for raw in lines:
        fields = raw.decode(errors="replace").strip().split(",")
        if len(fields) < 6:
            continue
        try:
            stream, size, pos = int(fields[0]), int(fields[3]), int(fields[4])
            time = float(fields[1] if fields[1] not in ("", "N/A") else fields[2])
        except ValueError:
            continue
        if pos >= 0 and size >= 0:
            packets.append(Packet(stream, time, pos, size, "K" in fields[5]))
    return packets


def merge(ranges: Iterable[ByteRange]) -> list[ByteRange]:
    merged: list[ByteRange] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def chunk_ranges(
    packets: Sequence[Packet], video_stream: int, chunks: Sequence[ChunkPlan], file_size: int
) -> list[list[ByteRange]]:
    """Each chunk's byte ranges (see the module docstring). Times count from the first
    packet's, as ffmpeg's ``-ss`` does.

    The packets are sorted once, by time for the keyframes and by position for all, so
    that each chunk's borders are two binary searches: a long source has a million
    packets and a few hundred chunks."""
    origin = min(p.time for p in packets)
    first = min(p.pos for p in packets)
    keyframes = sorted(
        (p.time - origin, p.pos) for p in packets if p.stream == video_stream and p.key
    )
    key_times = [t for t, _ in keyframes]
    # The lowest position of the keyframes from each one on in time.
    lowest_from = list(accumulate((pos for _, pos in reversed(keyframes)), min))[::-1]
    stored = sorted(packets, key=lambda p: p.pos)
    positions = [p.pos for p in stored]
    # The furthest byte any packet stored up to each one reaches.
    reach = list(accumulate((p.pos + p.size for p in stored), max))
    fixed = [(0, min(file_size, first + HEAD_BYTES)), (reach[-1], file_size)]
    result = []
    for chunk in chunks:
        before = bisect_right(key_times, chunk.start + 1e-6)
        begin = keyframes[before - 1][1] if before else first
        if chunk.duration is None:
            end = file_size
        else:
            after = bisect_left(key_times, chunk.start + chunk.duration + TAIL_SECONDS)
            # The packets up to that keyframe, which is included (whatever is stored
            # before its position in the file, all streams).
            bound = lowest_from[after] if after < len(keyframes) else file_size
            up_to = bisect_right(positions, bound)
            end = reach[up_to - 1] if up_to else file_size
        result.append(merge([*fixed, (begin, end)]))
    return result


async def plan_ranges(
    source: Path, info: MediaInfo, chunks: Sequence[ChunkPlan], settings: WorkerSettings
) -> list[list[ByteRange]] | None:
    """Every chunk's byte ranges, or None when its chunks must download the whole file."""
    if info.demuxer not in RANGED_DEMUXERS:
        return None
    result = await run_process(
        listing_args(source, info.demuxer),
        time_limit=settings.scan_timeout,
        tool="ffprobe-positions",
        capture_stdout=True,
        stdout_limit=SCAN_OUTPUT_LIMIT,
        sandbox=sandbox_for(settings, source.parent),
    )
    if result.returncode != 0 or not result.stdout:
        log.warning("packet positions unavailable: chunks download the whole source")
        return None
    packets = await asyncio.to_thread(parse_packets, io.BytesIO(result.stdout))
    if not any(p.stream == info.video_index and p.key for p in packets):
        return None
    return chunk_ranges(packets, info.video_index, chunks, file_size(source))
