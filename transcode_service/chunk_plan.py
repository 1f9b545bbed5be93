"""Where a chunked video's chunks start and end in the source: the plan the video's job
makes once and that its audio pieces (``chunk_audio.py``), byte ranges (``byte_ranges.py``)
and chunk jobs (``chunks.py``) all follow."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ChunkPlan:
    index: int
    start: float
    duration: float | None  # None: to the end of the source (the last chunk)
    first_segment: int


def plan_chunks(duration: float, chunk_seconds: int, segment_seconds: int) -> list[ChunkPlan]:
    """Chunks of ``chunk_seconds`` on segment borders; the last one runs to the end of the
    source. A remainder shorter than one segment joins the previous chunk instead of being
    a chunk of its own."""
    count = max(1, math.ceil(duration / chunk_seconds))
    if count > 1 and duration - (count - 1) * chunk_seconds < segment_seconds:
        count -= 1
    per_chunk = chunk_seconds // segment_seconds
    return [
        ChunkPlan(
            index=i,
            start=float(i * chunk_seconds),
            duration=None if i == count - 1 else float(chunk_seconds),
            first_segment=i * per_chunk,
        )
        for i in range(count)
    ]
