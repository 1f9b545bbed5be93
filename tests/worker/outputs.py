"""What a handler wrote, checked: the run's outputs of a video downloaded and the HLS ladder
verified (master playlist parsed, every variant and segment present, streams as announced);
and handler dependencies with other rungs. Shared by the handler and real-content tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import m3u8

from shared import keys
from shared.messages import TranscodeSucceeded
from tests.media import ffprobe
from tests.store import Store
from transcode_service.handlers import Deps


def with_rungs(deps: Deps, rungs: list[int]) -> Deps:
    return dataclasses.replace(deps, settings=deps.settings.model_copy(update={"rungs": rungs}))


async def fetch_outputs(store: Store, video_id: int, dest: Path) -> Path:
    return await store.download_tree(keys.processed_prefix(video_id), dest)


def video_stream(info: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


async def check_outputs(
    store: Store, event: TranscodeSucceeded, tmp_path: Path, *, audio: bool
) -> Path:
    """Master playlist parsed; every variant and segment present; sizes as announced."""
    out = await fetch_outputs(store, event.video_id, tmp_path / "out")
    master = m3u8.load(str(out / "master.m3u8"))
    assert master.is_variant
    assert [p.uri for p in master.playlists] == [
        f"hls_{r.quality}/{r.quality}.m3u8" for r in event.renditions
    ]
    for playlist, rendition in zip(master.playlists, event.renditions, strict=True):
        info = playlist.stream_info
        assert info.resolution == (rendition.width, rendition.height)
        assert info.bandwidth == rendition.bandwidth
        assert ("mp4a.40.2" in info.codecs) == audio
        assert rendition.playlist_key == f"processed/{event.video_id}/{playlist.uri}"
        media = m3u8.load(str(out / playlist.uri))
        assert media.is_endlist and media.segments
        for segment in media.segments:
            assert (out / Path(playlist.uri).parent / segment.uri).exists(), segment.uri
        probed = ffprobe(out / playlist.uri)
        video = video_stream(probed)
        assert (video["width"], video["height"]) == (rendition.width, rendition.height)
        assert video["codec_name"] == "h264"
        audios = [s for s in probed["streams"] if s["codec_type"] == "audio"]
        assert [a["codec_name"] for a in audios] == (["aac"] if audio else [])
        assert not any(s["codec_type"] in ("subtitle", "data") for s in probed["streams"])
    return out
