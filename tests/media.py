"""Tiny test videos generated with ffmpeg's lavfi sources at test time (nothing committed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def make_video(
    path: Path,
    *,
    width: int = 320,
    height: int = 240,
    duration: float = 2.0,
    fps: int = 25,
    audio: bool = True,
    rotate: int | None = None,
    vcodec: str = "libx264",
    extra_output_args: list[str] | None = None,
) -> Path:
    """Write a test clip (moving test pattern, optional sine audio) to ``path``.

    ``rotate`` sets display-matrix rotation metadata (90, 180, 270) as phones do.
    """
    args = [
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={duration}"]
    args += ["-map", "0:v"]
    if audio:
        args += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast"]
    args += extra_output_args or []
    args.append(str(path))
    subprocess.run(args, check=True, timeout=120)
    if rotate is not None:
        _set_rotation(path, rotate)
    return path


def _set_rotation(path: Path, rotate: int) -> None:
    # ffmpeg 5.x turns the "rotate" tag into a display matrix only on a stream copy.
    tmp = path.with_name(path.stem + ".rot" + path.suffix)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(path),
            "-c",
            "copy",
            "-metadata:s:v:0",
            f"rotate={rotate}",
            str(tmp),
        ],
        check=True,
        timeout=120,
    )
    tmp.replace(path)


def ffprobe(path_or_url: str | Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path_or_url),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result
