"""The object-key layout in the bucket. User-supplied names never become keys."""

from __future__ import annotations

import re
import uuid

_EXT = re.compile(r"^\.[a-z0-9]{1,8}$")


def raw_prefix(video_id: int) -> str:
    return f"raw/{video_id}/"


def raw_key(video_id: int, extension: str, token: uuid.UUID | None = None) -> str:
    """``raw/{id}/{uuid}{ext}``; the extension must already be normalised and allowlisted."""
    ext = extension.lower()
    if not _EXT.match(ext):
        raise ValueError(f"not a safe extension: {extension!r}")
    return f"raw/{video_id}/{token or uuid.uuid4()}{ext}"


def is_raw_key_of(video_id: int, key: str) -> bool:
    """Whether ``key`` is an upload of ``video_id``: directly under ``raw/{id}/``, one plain
    name (S3 keys are not paths, but ``..`` and nested names are never issued by the API)."""
    prefix = raw_prefix(video_id)
    name = key[len(prefix) :]
    return key.startswith(prefix) and bool(name) and "/" not in name and name not in (".", "..")


def processed_prefix(video_id: int) -> str:
    return f"processed/{video_id}/"


def cover_key(video_id: int) -> str:
    return f"processed/{video_id}/cover.jpg"


def master_playlist_key(video_id: int) -> str:
    return f"processed/{video_id}/master.m3u8"


def rendition_dir(video_id: int, height: int) -> str:
    return f"processed/{video_id}/hls_{height}p/"


def rendition_playlist_key(video_id: int, height: int) -> str:
    return f"processed/{video_id}/hls_{height}p/{height}p.m3u8"


def quality_label(height: int) -> str:
    return f"{height}p"


def video_prefixes(video_id: int) -> tuple[str, str]:
    """Every prefix under which objects of a video live (for deletion)."""
    return raw_prefix(video_id), processed_prefix(video_id)
