"""Measurements 1 and 2: the worker's own ladder command run bare, and the same command
builder with one rung per process, run one after another."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.console import BenchError, say
from shared.settings import WorkerSettings
from transcode_service.ladder import Rung, build_ladder_args, plan_ladder
from transcode_service.probe import MediaInfo, probe


@dataclass
class LadderTimes:
    rungs: list[str]
    warmup: float
    runs: list[float]
    per_rung: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def per_rung_total(self) -> float:
        return sum(self.per_rung.values())


async def run_ladder(
    source: Path, info: MediaInfo, rungs: list[Rung], settings: WorkerSettings, scratch: Path
) -> float:
    """Run ``build_ladder_args`` exactly as the worker does (fresh output directories made
    first, as the transcode handler does); wall-clock seconds of the ffmpeg process."""
    out_dir = Path(tempfile.mkdtemp(prefix="ladder-", dir=scratch))
    try:
        for rung in rungs:
            (out_dir / rung.dirname).mkdir(parents=True)
        args = build_ladder_args(source, info, rungs, out_dir, settings)
        started = time.monotonic()
        # -progress pipe:1 goes to /dev/null: nothing to drain.
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await process.communicate()
        elapsed = time.monotonic() - started
        if process.returncode != 0:
            tail = " | ".join(stderr.decode(errors="replace").strip().splitlines()[-3:])
            raise BenchError(f"the ladder command failed ({process.returncode}): {tail}")
        for rung in rungs:
            if not (out_dir / rung.dirname / rung.playlist_name).exists():
                raise BenchError(f"the ladder command wrote no {rung.playlist_name}")
        return elapsed
    finally:
        await asyncio.to_thread(shutil.rmtree, out_dir, True)


async def measure(
    source: Path, settings: WorkerSettings, scratch: Path, timed_runs: int = 2
) -> tuple[MediaInfo, LadderTimes]:
    info = await probe(source, settings)
    rungs = plan_ladder(info, settings)
    names = [f"{r.quality}:{r.width}x{r.height}" for r in rungs]
    say(f"bare ladder: {info.width}x{info.height} {info.duration:.1f} s -> {', '.join(names)}")
    warmup = await run_ladder(source, info, rungs, settings, scratch)
    say(f"  warm-up run: {warmup:.2f} s")
    runs = []
    for i in range(timed_runs):
        runs.append(await run_ladder(source, info, rungs, settings, scratch))
        say(f"  timed run {i + 1}/{timed_runs}: {runs[-1]:.2f} s")
    times = LadderTimes(rungs=names, warmup=warmup, runs=runs)
    say("one process per rung, one after another")
    for rung, name in zip(rungs, names, strict=True):
        times.per_rung[name] = await run_ladder(source, info, [rung], settings, scratch)
        say(f"  {name}: {times.per_rung[name]:.2f} s")
    return info, times
