"""Tiny test videos generated with ffmpeg's lavfi sources at test time (nothing committed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

FFMPEG_TIMEOUT = 120


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly, overwriting its output; raises if it fails."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=FFMPEG_TIMEOUT,
    )


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
    ffmpeg(*args)
    if rotate is not None:
        _set_rotation(path, rotate)
    return path


def _set_rotation(path: Path, rotate: int) -> None:
    # ffmpeg 5.x turns the "rotate" tag into a display matrix only on a stream copy.
    tmp = path.with_name(path.stem + ".rot" + path.suffix)
    ffmpeg("-i", str(path), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(tmp))
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
        timeout=FFMPEG_TIMEOUT,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _ffmpeg(*args: str, stdout: Path | None = None) -> None:
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    if stdout is None:
        subprocess.run(command, check=True, timeout=300)
        return
    with stdout.open("wb") as out:
        subprocess.run(command, check=True, timeout=300, stdout=out)


def make_frame_rate_bomb(path: Path, *, gap: float = 21500, fps: int = 120) -> Path:
    """A Matroska file of two tiny frames ``gap`` seconds apart whose stream header claims
    ``fps`` frames per second: encoded naively, hours of duplicated frames."""
    _ffmpeg(
        "-f", "lavfi", "-i", f"color=c=gray:size=64x48:rate={fps}",
        "-frames:v", "2", "-vf", f"setpts=N*{gap}/TB",
        "-fps_mode", "passthrough", "-r", str(fps),
        "-c:v", "libx264", "-preset", "ultrafast", str(path),
    )  # fmt: skip
    return path


def make_picture(path: Path, *, width: int = 96, height: int = 96) -> Path:
    _ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}", "-frames:v", "1", str(path))
    return path


def make_still_podcast(path: Path, picture: Path, *, duration: float = 600) -> Path:
    """Audio with its cover picture attached (an MP3 or M4A podcast, depending on the
    suffix), made cheap to encode: mono 8 kHz speech-rate audio at a low bit rate."""
    audio_codec = ["-c:a", "libmp3lame"] if path.suffix == ".mp3" else ["-c:a", "aac"]
    extra = ["-id3v2_version", "3"] if path.suffix == ".mp3" else []
    _ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=8000:duration={duration}",
        "-i", str(picture), "-map", "0:a", "-map", "1:v",
        *audio_codec, "-b:a", "16k", "-ac", "1",
        "-c:v", "png", "-disposition:v", "attached_pic", *extra, str(path),
    )  # fmt: skip
    return path


def make_looped_picture_video(path: Path, picture: Path, *, duration: float = 600) -> Path:
    """The other common podcast upload: the picture looped at 1 fps beside the audio, as
    ``ffmpeg -loop 1 -framerate 1 -i cover.png -i talk.m4a -tune stillimage`` makes it."""
    _ffmpeg(
        "-loop", "1", "-framerate", "1", "-i", str(picture),
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=8000:duration={duration}",
        "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "stillimage",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "16k", "-ac", "1", str(path),
    )  # fmt: skip
    return path


def make_piped_recording(path: Path, *, container: str = "webm", duration: float = 3) -> Path:
    """What a browser's MediaRecorder uploads: WebM (or Matroska) written to a pipe as it is
    recorded, so its header can state no duration (the muxer cannot seek back)."""
    video = ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k"]
    if container == "matroska":
        video = ["-c:v", "libx264", "-preset", "ultrafast"]
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={duration}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}",
        *video, "-c:a", "libopus", "-b:a", "48k", "-f", container, "pipe:1",
        stdout=path,
    )  # fmt: skip
    return path


def make_fragmented_mp4(path: Path, *, duration: float = 3) -> Path:
    """A fragmented MP4 as live encoders and browsers write it (empty moov, fragments at
    keyframes), written to a pipe so nothing is patched in afterwards."""
    _ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={duration}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={duration}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
        "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "pipe:1",
        stdout=path,
    )  # fmt: skip
    return path


def make_single_frame_video(path: Path, picture: Path, *, duration: float = 600) -> Path:
    """A third podcast shape: one video frame (``ffmpeg -i cover.png -i talk.m4a out.mp4``
    without ``-loop``) and long sound; a CFR encoder repeats that frame only at the end."""
    _ffmpeg(
        "-i", str(picture),
        "-f", "lavfi", "-i", f"sine=frequency=300:sample_rate=8000:duration={duration}",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "16k", "-ac", "1", str(path),
    )  # fmt: skip
    return path
