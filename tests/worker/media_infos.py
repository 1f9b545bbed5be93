"""Probe results made by hand for the pure worker tests: a ``MediaInfo`` and an ffprobe JSON
document of a normal 1080p clip, with the fields a test changes."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from transcode_service.probe import MediaInfo


def info(
    width: int = 1920,
    height: int = 1080,
    *,
    rotation: int = 0,
    sar: Fraction = Fraction(1),
    fps: float = 25.0,
    audio: bool = True,
    duration: float = 10.0,
) -> MediaInfo:
    return MediaInfo(
        format_name="mov,mp4,m4a,3gp,3g2,mj2",
        demuxer="mov",
        duration=duration,
        width=width,
        height=height,
        sample_aspect_ratio=sar,
        rotation=rotation,
        fps=fps,
        video_codec="h264",
        has_audio=audio,
        stream_count=2 if audio else 1,
    )


def probed(**overrides: Any) -> dict[str, Any]:
    video = {
        "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
        "avg_frame_rate": "30000/1001", "sample_aspect_ratio": "1:1",
    }  # fmt: skip
    data: dict[str, Any] = {
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.5"},
        "streams": [video, {"codec_type": "audio", "codec_name": "aac"}],
    }
    for key, value in overrides.items():
        if key == "format":
            data["format"].update(value)
        else:
            video.update({key: value})
    return data
