"""Real HLS outputs, laid out exactly as the worker writes them, for playback tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shared.keys import master_playlist_key, processed_prefix, rendition_playlist_key
from shared.messages import Rendition
from tests.media import ffmpeg
from tests.store import Store

LADDER = ((240, 320, 400_000), (120, 160, 150_000))


def _encode(source: Path, out_dir: Path, height: int, width: int) -> None:
    rung = out_dir / f"hls_{height}p"
    rung.mkdir(parents=True, exist_ok=True)
    ffmpeg(
        "-i", str(source), "-vf", f"scale={width}:{height}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac", "-b:a", "64k",
        "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod",
        "-hls_segment_filename", str(rung / f"{height}p_%05d.ts"),
        str(rung / f"{height}p.m3u8"),
    )  # fmt: skip


def build_hls(source: Path, out_dir: Path) -> list[Rendition]:
    master = ["#EXTM3U", "#EXT-X-VERSION:3"]
    renditions = []
    for height, width, bandwidth in LADDER:
        _encode(source, out_dir, height, width)
        master += [
            f"#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},RESOLUTION={width}x{height}",
            f"hls_{height}p/{height}p.m3u8",
        ]
        renditions.append((height, width, bandwidth))
    (out_dir / "master.m3u8").write_text("\n".join(master) + "\n")
    return [
        Rendition(quality=f"{h}p", width=w, height=h, bandwidth=b, playlist_key="")
        for h, w, b in renditions
    ]


async def upload_hls(
    store: Store, video_id: int, source: Path, work: Path
) -> tuple[str, list[Rendition]]:
    """Encode and upload a two-rung ladder; returns the master key and the renditions."""
    out_dir = work / f"hls-{video_id}"
    renditions = await asyncio.to_thread(build_hls, source, out_dir)
    files = await asyncio.to_thread(lambda: [p for p in out_dir.rglob("*") if p.is_file()])
    for path in files:
        key = processed_prefix(video_id) + path.relative_to(out_dir).as_posix()
        await store.put(key, await asyncio.to_thread(path.read_bytes))
    return master_playlist_key(video_id), [
        r.model_copy(update={"playlist_key": rendition_playlist_key(video_id, r.height)})
        for r in renditions
    ]
