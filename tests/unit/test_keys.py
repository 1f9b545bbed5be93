"""The object-key layout never takes a user-supplied name."""

from __future__ import annotations

import uuid

import pytest

from shared import keys


def test_layout_matches_the_original_service() -> None:
    token = uuid.UUID(int=1)
    assert keys.raw_key(12, ".MP4", token) == f"raw/12/{token}.mp4"
    assert keys.cover_key(12) == "processed/12/cover.jpg"
    assert keys.rendition_playlist_key(12, 720) == "processed/12/hls_720p/720p.m3u8"
    assert keys.master_playlist_key(12) == "processed/12/master.m3u8"
    assert keys.video_prefixes(12) == ("raw/12/", "processed/12/")


@pytest.mark.parametrize("ext", ["../x", ".mp4/../../etc", "", "mp4", ".a b"])
def test_unsafe_extensions_are_refused(ext: str) -> None:
    with pytest.raises(ValueError):
        keys.raw_key(1, ext)


@pytest.mark.parametrize(
    ("key", "owned"),
    [
        ("raw/12/5f0c.mp4", True),
        ("raw/12/", False),
        ("raw/120/5f0c.mp4", False),
        ("raw/1/5f0c.mp4", False),
        ("raw/12/../13/5f0c.mp4", False),
        ("raw/12/..", False),
        ("processed/12/cover.jpg", False),
        ("/raw/12/5f0c.mp4", False),
    ],
)
def test_a_job_may_only_read_its_own_videos_upload(key: str, owned: bool) -> None:
    assert keys.is_raw_key_of(12, key) is owned
