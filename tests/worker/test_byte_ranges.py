"""A chunk downloads only its share of an MP4 source: the ranges the video's job plans, a
sparse file written from them, and a chunk encoded from that file frame for frame."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shared import keys
from shared.messages import ChunkJob, chunk_job_id
from shared.settings import WorkerSettings
from tests.media import make_video
from tests.store import Store
from tests.worker.support import new_video_id
from transcode_service import storage
from transcode_service.byte_ranges import HEAD_BYTES, plan_ranges
from transcode_service.chunk_plan import plan_chunks
from transcode_service.chunks import handle_chunk
from transcode_service.handlers import Deps
from transcode_service.probe import probe

if TYPE_CHECKING:
    pass

FPS = 25
SECONDS = 36


def _covered(ranges: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in ranges)


def _frames(playlist: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(playlist)],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return int(out.stdout.split()[0])


@pytest.fixture(scope="module")
def long_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 12 s chunks of a file several times the 8 MiB head, so each chunk's share shows."""
    return make_video(
        tmp_path_factory.mktemp("ranges") / "s.mp4", width=1280, height=720,
        duration=2 * SECONDS, fps=FPS, extra_output_args=["-g", str(2 * FPS)],
    )  # fmt: skip


async def test_chunks_of_an_mp4_need_only_their_share(long_mp4: Path) -> None:
    settings = WorkerSettings(segment_seconds=6, chunk_seconds=12)
    source = long_mp4
    size = source.stat().st_size
    assert size > 3 * HEAD_BYTES
    info = await probe(source, settings)
    plans = plan_chunks(info.duration, 12, 6)
    ranges = await plan_ranges(source, info, plans, settings)
    assert ranges is not None and len(ranges) == 6
    # Every chunk has the head and the tail (the moov, at either end) and its own share of
    # the packets, a few seconds into the next chunk's.
    assert all(r[0][0] == 0 and r[-1][1] == size for r in ranges)
    shares = [_covered(r) / size for r in ranges]
    assert all(share < 0.6 for share in shares[1:-1]), shares
    assert all(share < 1 for share in shares), shares
    # A Matroska file is read by scanning: its chunks take the whole file.
    mkv = replace(info, demuxer="matroska")
    assert await plan_ranges(source, mkv, plans, settings) is None


async def test_sparse_download_writes_only_the_ranges(store: Store, tmp_path: Path) -> None:
    original = tmp_path / "original.bin"
    original.write_bytes(bytes(range(256)) * 64)  # 16 KiB
    key = await store.upload_source(original, new_video_id())
    dest = tmp_path / "sparse"
    size = original.stat().st_size
    fetched = await storage.download_ranges(
        store.s3, store.bucket, key, dest, [(0, 100), (8000, 9000), (16000, size)], size=size
    )
    assert fetched == 100 + 1000 + (size - 16000)
    data, want = dest.read_bytes(), original.read_bytes()
    assert len(data) == size
    assert data[:100] == want[:100] and data[8000:9000] == want[8000:9000]
    assert data[16000:] == want[16000:]
    assert data[100:8000] == bytes(7900)


async def test_a_chunk_encoded_from_its_ranges_has_every_frame(
    deps: Deps,
    store: Store,
    tmp_path: Path,
    long_mp4: Path,
) -> None:
    settings = deps.settings.model_copy(update={"segment_seconds": 6, "chunk_seconds": 12})
    source = long_mp4
    info = await probe(source, settings)
    plans = plan_chunks(info.duration, 12, 6)
    ranges = await plan_ranges(source, info, plans, settings)
    assert ranges is not None
    # The third chunk of six: neither the head nor the tail of the file holds its frames.
    assert sum(end - start for start, end in ranges[2]) < 0.6 * source.stat().st_size
    video_id = new_video_id()
    parent = uuid.uuid4()
    chunk = ChunkJob(
        video_id=video_id, job_id=chunk_job_id(parent, 2),
        source_key=await store.upload_source(source, video_id), parent_job_id=parent,
        index=2, count=6, start=24.0, duration=12.0, total_duration=info.duration,
        segment_seconds=6, first_segment=4, rungs=[180], source_size=source.stat().st_size,
        byte_ranges=ranges[2],
    )  # fmt: skip
    await handle_chunk(chunk, replace(deps, settings=settings))
    prefix = keys.rendition_dir(video_id, 180)
    names = sorted(k.rsplit("/", 1)[-1] for k in await store.keys(prefix))
    assert names == ["180p_00004.ts", "180p_00005.ts"]
    local = await store.download_tree(prefix, tmp_path / "out")
    listing = local / "chunk.m3u8"
    listing.write_text("".join(f"#EXTINF:6,\n{n}\n" for n in names) + "#EXT-X-ENDLIST\n")
    listing.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:6\n" + listing.read_text())
    assert await asyncio.to_thread(_frames, listing) == 12 * FPS
