"""Hand-written playlists in S3 for a video made online without an encode: enough for
visibility and playlist-signing tests, and any segment count."""

from __future__ import annotations

from shared.keys import master_playlist_key, processed_prefix, rendition_playlist_key
from shared.messages import Rendition
from tests.store import Store

SEGMENT_SECONDS = 6


def variant_text(segments: int) -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for i in range(segments):
        lines += [f"#EXTINF:{SEGMENT_SECONDS}.000000,", f"240p_{i:05d}.ts"]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


async def put_playlists(store: Store, video_id: int, segments: int) -> Rendition:
    """A master and one 240p variant of ``segments`` segments, at the keys the worker writes
    (the segments themselves are not there); returns the variant's rendition."""
    variant_key = rendition_playlist_key(video_id, 240)
    master = (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x240\n"
        + variant_key.removeprefix(processed_prefix(video_id))
        + "\n"
    )
    await store.put(master_playlist_key(video_id), master.encode())
    await store.put(variant_key, variant_text(segments).encode())
    return Rendition(
        quality="240p", width=320, height=240, bandwidth=400_000, playlist_key=variant_key
    )
