"""A chunk's byte ranges, computed with binary searches over packets sorted once, are the
ones a direct scan of the whole packet list per chunk finds, on generated MP4 layouts."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from transcode_service.byte_ranges import (
    HEAD_BYTES,
    TAIL_SECONDS,
    ByteRange,
    Packet,
    chunk_ranges,
    merge,
)
from transcode_service.chunk_plan import ChunkPlan, plan_chunks

VIDEO, AUDIO = 0, 1


def reference_ranges(
    packets: Sequence[Packet], video_stream: int, chunks: Sequence[ChunkPlan], file_size: int
) -> list[list[ByteRange]]:
    """The definition, read off the module docstring: every chunk looks at every packet."""
    origin = min(p.time for p in packets)
    first = min(p.pos for p in packets)
    last = max(p.pos + p.size for p in packets)
    keyframes = sorted(
        (p.time - origin, p.pos) for p in packets if p.stream == video_stream and p.key
    )
    fixed = [(0, min(file_size, first + HEAD_BYTES)), (last, file_size)]
    result = []
    for chunk in chunks:
        before = [pos for t, pos in keyframes if t <= chunk.start + 1e-6]
        begin = before[-1] if before else first
        if chunk.duration is None:
            end = file_size
        else:
            stop = chunk.start + chunk.duration + TAIL_SECONDS
            after = [pos for t, pos in keyframes if t >= stop]
            end = min(after) if after else file_size
            end = max((p.pos + p.size for p in packets if p.pos <= end), default=file_size)
        result.append(merge([*fixed, (begin, end)]))
    return result


@dataclass(frozen=True)
class Layout:
    """How a generated MP4 stores its packets."""

    seconds: float
    fps: float
    gop: int  # frames from one keyframe to the next (scene cuts add more)
    b_frames: bool  # presentation order differs from storage order
    interleave: float | None  # seconds of each stream per run; None: all video first
    head: int  # bytes before the first packet (ftyp + a fast-start moov)
    audio_lead: float  # the audio starts this much before the video
    runs_in_order: bool = True  # False: the index points at the runs in random order


def generate(layout: Layout, rng: random.Random) -> tuple[list[Packet], int]:
    """The packets of a file with ``layout``, in the demuxer's order, and the file's size
    (a moov at the end)."""
    frame = 1 / layout.fps
    frames = int(layout.seconds * layout.fps)
    keys = [n % layout.gop == 0 or rng.random() < 0.01 for n in range(frames)]
    written: list[tuple[float, int, float, int, bool]] = []  # (dts, stream, pts, size, key)
    for n, key in enumerate(keys):
        # One frame of reordering delay; a B-frame is shown after the frame stored next.
        pts = (n + 1) * frame
        if layout.b_frames and not key and n + 1 < frames and not keys[n + 1]:
            pts += rng.choice((0.0, frame))
        written.append((n * frame, VIDEO, pts, rng.randint(2_000, 60_000) * (1 + 3 * key), key))
    audio_frame = 1024 / 48_000
    for i in range(int((layout.seconds + layout.audio_lead) / audio_frame)):
        at = i * audio_frame - layout.audio_lead
        written.append((at, AUDIO, at, rng.randint(200, 400), True))
    interleave = layout.interleave
    if interleave is None:
        written.sort(key=lambda w: (w[1], w[0]))
    else:
        runs = list(range(int(layout.seconds // interleave) + 2))
        if not layout.runs_in_order:
            rng.shuffle(runs)
        written.sort(key=lambda w: (runs[int(w[0] // interleave) + 1], w[1], w[0]))
    packets, pos = [], layout.head
    for _, stream, pts, size, key in written:
        packets.append(Packet(stream, pts + 1.4, pos, size, key))
        pos += size
    rng.shuffle(packets)  # nothing may depend on the listing's order
    return packets, pos + rng.randint(0, 500_000)


def layouts() -> list[Layout]:
    return [
        Layout(120, 25, 50, False, 0.5, 48, 0.0),
        Layout(90, 30, 60, True, 1.0, 2_000_000, 0.021),
        Layout(75, 60, 120, True, None, 32, 0.0),
        Layout(60, 24, 7, True, 0.25, 10_000, 0.3),
        Layout(60, 25, 250, False, 2.0, 48, 0.0),  # keyframes 10 s apart
        Layout(40, 50, 1, False, 0.5, 48, 0.0),  # every frame a keyframe
        Layout(60, 25, 25, True, 3.0, 48, 0.1, runs_in_order=False),
    ]


def chunk_layouts(
    packets: list[Packet], seconds: float, rng: random.Random
) -> list[list[ChunkPlan]]:
    planned = [plan_chunks(seconds, c, s) for c, s in ((12, 6), (10, 2), (30, 6), (6, 6))]
    # Borders anywhere: at random, past the end, and on keyframes' times (within the
    # microsecond of tolerance, and just outside it).
    origin = min(p.time for p in packets)
    on_keys = [p.time - origin for p in rng.sample(packets, 200) if p.stream == VIDEO and p.key]
    starts = [rng.uniform(0, seconds + 5) for _ in range(20)] + [seconds + 30]
    starts += [t + d for t in on_keys[:5] for d in (0.0, 1e-6, -1e-6, 2e-6, -2e-6)]
    ends = [t - TAIL_SECONDS for t in on_keys[:5]]
    anywhere = [
        ChunkPlan(i, start, rng.choice((None, rng.uniform(0.01, 15), 0.0)), i)
        for i, start in enumerate(sorted(starts))
    ]
    to_keys = [ChunkPlan(i, 0.0, end, 0) for i, end in enumerate(ends) if end > 0]
    return [*planned, anywhere, to_keys]


@pytest.mark.parametrize("layout", layouts())
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_ranges_are_those_of_a_scan_per_chunk(layout: Layout, seed: int) -> None:
    rng = random.Random(seed)
    packets, size = generate(layout, rng)
    middles = []
    for chunks in chunk_layouts(packets, layout.seconds, rng):
        want = reference_ranges(packets, VIDEO, chunks, size)
        assert chunk_ranges(packets, VIDEO, chunks, size) == want
        middles += [ranges[1] for ranges in want if len(ranges) == 3]
    # Some chunks really take only a share of the file, so the cases are not trivial.
    assert any(end - start < size // 2 for start, end in middles)


def test_without_keyframes_every_chunk_takes_its_start_to_the_end() -> None:
    packets, size = generate(layouts()[0], random.Random(4))
    chunks = plan_chunks(120, 12, 6)
    got = chunk_ranges(packets, 7, chunks, size)  # no packet of stream 7
    assert got == reference_ranges(packets, 7, chunks, size)
    assert all(ranges[-1][1] == size for ranges in got)
