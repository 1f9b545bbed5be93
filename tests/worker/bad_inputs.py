"""Uploads a worker must refuse with a readable permanent failure, each with the words its
reason must contain; used by the handler tests and the consumer tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.media import ffmpeg, make_video


def _truncated(tmp_path: Path) -> Path:
    whole = make_video(tmp_path / "whole.mp4", duration=2)
    data = whole.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_faststart(tmp_path: Path) -> Path:
    """Index at the front, so it probes fine; two thirds of the media data missing."""
    whole = make_video(
        tmp_path / "whole.mp4", duration=6, extra_output_args=["-movflags", "+faststart"]
    )
    data = whole.read_bytes()
    path = tmp_path / "truncated_faststart.mp4"
    path.write_bytes(data[: len(data) // 3])
    return path


def _hls_renamed(tmp_path: Path) -> Path:
    path = tmp_path / "playlist.mp4"
    path.write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    )
    return path


def _huge_header(tmp_path: Path) -> Path:
    """A real AVI whose header declares a 9000x9000 picture (FFV1 keeps no size of its own,
    so the container's word is what the decoder gets)."""
    path = make_video(
        tmp_path / "huge.avi", width=16, height=16, duration=0.2, audio=False, vcodec="ffv1"
    )
    data = bytearray(path.read_bytes())
    # BITMAPINFOHEADER (after "strf") and the main header ("avih") carry the size.
    strf = data.index(b"strf") + 8
    data[strf + 4 : strf + 12] = (9000).to_bytes(4, "little") * 2
    avih = data.index(b"avih") + 8
    data[avih + 32 : avih + 40] = (9000).to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    return path


def _audio_only(tmp_path: Path) -> Path:
    path = tmp_path / "audio.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(path))
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "text": (_text, "not a readable video"),
    "empty": (_empty, "empty"),
    "truncated": (_truncated, "not a readable video"),
    "truncated_faststart": (_truncated_faststart, "damaged or truncated"),
    "audio_only": (_audio_only, "no video stream"),
    "hls_renamed": (_hls_renamed, "not a readable video"),
    "huge_header": (_huge_header, "at most 7680x4320"),
}
