"""A chunked video's audio, encoded once for the whole file.

An AAC encoder starts from silence: encoded chunk by chunk, the stitched track had about
23 ms (one AAC frame) of near-silence at every chunk border. So the video's job encodes the
whole audio track once, with the one-job ladder's AAC settings, and the segment muxer cuts
the packets into one *piece* per chunk: piece i holds the packets from the first one at or
after border i up to the first one of piece i + 1. The pieces are NUT files, which keep the
encoder's timestamps exactly (a sample-rate time base). Each chunk copies its piece into
every rung, placed on its timeline with ``-itsoffset``, so the chunks' audio together is the
one continuous AAC stream of a one-pass encode, packet after packet, with no seam to hear.

The track is padded with silence to the video's duration, so that every chunk has a piece
even when the source's sound stops early.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shared.settings import WorkerSettings
from transcode_service import storage
from transcode_service.budget import Watchdog, audio_cpu_budget, run_watched
from transcode_service.chunk_plan import ChunkPlan
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import check_result
from transcode_service.ladder import audio_encoder_args
from transcode_service.probe import PROTOCOL_WHITELIST, MediaInfo, run_ffprobe
from transcode_service.sandbox import sandbox_for

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

PIECE_FORMAT = "nut"
# The pieces' timestamps start this far into their timeline, so the encoder's priming
# packet (one frame before zero) keeps a positive timestamp.
PIECE_TIMELINE_BASE = 10.0


PIECE_NAMES = f"audio_%06d.{PIECE_FORMAT}"  # the segment muxer's pattern


def piece_name(index: int) -> str:
    return PIECE_NAMES % index


def pieces_args(
    source: Path, info: MediaInfo, chunks: Sequence[ChunkPlan], duration: float, out_dir: Path
) -> list[str]:
    """One ffmpeg run: the source's audio, padded to ``duration``, encoded once and cut
    into one piece per chunk at the chunks' starts."""
    times = ",".join(f"{PIECE_TIMELINE_BASE + c.start:.6f}" for c in chunks[1:])
    stream = "a:0" if info.audio_index is None else str(info.audio_index)
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "warning", "-y",
        "-progress", "pipe:1",
        "-protocol_whitelist", PROTOCOL_WHITELIST,
        "-f", info.demuxer, "-i", str(source),
        "-map", f"0:{stream}", "-vn", "-sn", "-dn", "-map_metadata", "-1",
        "-af", f"apad=whole_dur={duration:.6f}",
        *audio_encoder_args(info),
        "-output_ts_offset", f"{PIECE_TIMELINE_BASE:.6f}",
        "-f", "segment", "-segment_format", PIECE_FORMAT, "-segment_times", times,
        "-reset_timestamps", "0",
        str(out_dir / PIECE_NAMES),
    ]  # fmt: skip


def first_packet_args(piece: Path) -> list[str]:
    return [
        "ffprobe", "-hide_banner", "-v", "error",
        "-protocol_whitelist", PROTOCOL_WHITELIST, "-f", PIECE_FORMAT,
        "-show_entries", "format=start_time", "-of", "default=noprint_wrappers=1:nokey=1",
        "-i", str(piece),
    ]  # fmt: skip


async def first_packet_time(piece: Path, settings: WorkerSettings) -> float:
    result = await run_ffprobe(first_packet_args(piece), piece, settings, "ffprobe-audio")
    check_result(result, "reading the encoded audio")
    try:
        return float(result.stdout.strip())
    except ValueError:
        raise PermanentError("the encoded audio has no timestamps") from None


async def encode_pieces(
    source: Path, info: MediaInfo, chunks: Sequence[ChunkPlan], settings: WorkerSettings
) -> list[tuple[Path, float]]:
    """Encode the audio once and cut it into one piece per chunk, beside ``source``;
    returns each piece with its offset: where its first packet falls after its chunk's
    start (0 to one AAC frame later; the first piece's priming frame one frame before)."""
    out_dir = source.parent / "audio"
    out_dir.mkdir(exist_ok=True)
    watchdog = Watchdog(
        budget=audio_cpu_budget(info.duration, settings),
        min_speed=settings.min_speed,
        window=settings.speed_window,
    )
    result = await run_watched(
        pieces_args(source, info, chunks, info.duration, out_dir),
        watchdog,
        time_limit=settings.ffmpeg_timeout_base + settings.ffmpeg_timeout_factor * info.duration,
        tool="ffmpeg-audio",
        sandbox=sandbox_for(settings, source.parent),
    )
    check_result(result, "encoding the audio")
    pieces: list[tuple[Path, float]] = []
    for index, chunk in enumerate(chunks):
        piece = out_dir / piece_name(index)
        if not piece.exists():
            raise PermanentError(
                f"the audio could not be cut for chunk {index + 1} of {len(chunks)}"
            )
        start = await first_packet_time(piece, settings)
        pieces.append((piece, start - PIECE_TIMELINE_BASE - chunk.start))
    return pieces


async def download_piece(
    s3: S3Client, bucket: str, key: str, dest: Path, settings: WorkerSettings
) -> Path:
    try:
        await storage.download(s3, bucket, key, dest, max_bytes=settings.max_source_bytes)
    except PermanentError:
        # Written by the video's job before it published the chunk: gone means deleted.
        raise PermanentError("the chunk's encoded audio is missing from storage") from None
    return dest
