"""Input clips made with ffmpeg's lavfi sources, so the bench needs no sample files."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from bench.console import BenchError, say

CLIP_SECONDS = 20
# mpeg2video intra-only at the lowest quantiser over a noisy picture: ~2.5 MB per 1080p frame,
# so a gigabyte is a few seconds of media (cheap to transcode) and the probe allowlist
# accepts it (rawvideo is not allowlisted).
BIG_CHUNK_SECONDS = 2


def size_of(path: Path) -> int:
    """Bytes in a file, 0 when it does not exist (sync: a single stat)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


async def ffmpeg(*args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode != 0:
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"ffmpeg {' '.join(args[:6])}... failed: {' | '.join(tail)}")


async def make_clip(
    path: Path, seconds: int = CLIP_SECONDS, size: str = "1920x1080", fps: int = 30
) -> Path:
    """Test pattern with a sine tone, H.264 veryfast + AAC in MP4 (by default 20 s of
    1080p30); kept when ``path`` already holds one."""
    if size_of(path) > 0:
        return path
    say(f"generating {seconds} s {size} {fps} fps clip {path.name}")
    partial = path.with_suffix(".part.mp4")
    await ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-shortest", "-movflags", "+faststart",
        str(partial),
    )  # fmt: skip
    partial.rename(path)
    return path


async def make_big(path: Path, min_bytes: int) -> Path:
    """An AVI of at least ``min_bytes``: a short noisy mpeg2video chunk, then that chunk
    looped with stream copy (disk speed) until the file is big enough."""
    chunk = path.with_name(path.stem + "-chunk.avi")
    say(f"generating a source of at least {min_bytes / 1e9:.2f} GB ({path.name})")
    try:
        await ffmpeg(
            "-f", "lavfi",
            "-i", f"testsrc2=size=1920x1080:rate=30:duration={BIG_CHUNK_SECONDS},"
            "noise=alls=60:allf=t",
            "-c:v", "mpeg2video", "-q:v", "1", "-qmin", "1", "-g", "1", "-pix_fmt", "yuv420p",
            str(chunk),
        )  # fmt: skip
        loops = max(0, math.ceil(min_bytes / size_of(chunk)) - 1)
        await ffmpeg("-stream_loop", str(loops), "-i", str(chunk), "-c", "copy", str(path))
    finally:
        chunk.unlink(missing_ok=True)
    size = size_of(path)
    if size < min_bytes:
        raise BenchError(f"{path.name} is only {size} bytes")
    return path


async def ffmpeg_version() -> str:
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    stdout, _ = await process.communicate()
    return stdout.decode(errors="replace").splitlines()[0] if stdout else "unknown"
