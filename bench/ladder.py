"""Measurements 1 and 2: the worker's own ladder command run bare, and the same command
builder with one rung per process, run one after another; plus the worker's cover command
alone, for comparison with the cover latency through the stack."""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.console import BenchError, say
from shared.settings import WorkerSettings
from transcode_service import handlers
from transcode_service.cover import extract_cover
from transcode_service.ladder import Rung, build_ladder_args, plan_ladder
from transcode_service.probe import MediaInfo, probe

# The worker runs the ladder under ``nice`` (covers preempt it); the bare runs do the same, so
# both compete equally with whatever else the machine is doing.
NICENESS: int = getattr(handlers, "LADDER_NICENESS", 0)


def worker_command(args: list[str]) -> list[str]:
    return ["nice", "-n", str(NICENESS), *args] if NICENESS else args


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # user + system seconds of the ffmpeg process and its threads
    load: float  # 1-minute load average when the run started (other work on the machine)


@dataclass
class LadderTimes:
    rungs: list[str]
    runs: list[Run] = field(default_factory=list)
    per_rung: dict[str, Run] = field(default_factory=dict)
    cover: Run | None = None

    @property
    def best(self) -> Run:
        return min(self.runs, key=lambda r: r.wall)

    @property
    def per_rung_wall(self) -> float:
        return sum(r.wall for r in self.per_rung.values())

    @property
    def per_rung_cpu(self) -> float:
        return sum(r.cpu for r in self.per_rung.values())


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_ladder(
    source: Path, info: MediaInfo, rungs: list[Rung], settings: WorkerSettings, scratch: Path
) -> Run:
    """Run ``build_ladder_args`` exactly as the worker does (fresh output directories made
    first, as the transcode handler does); wall-clock seconds of the ffmpeg process."""
    out_dir = Path(tempfile.mkdtemp(prefix="ladder-", dir=scratch))
    try:
        for rung in rungs:
            (out_dir / rung.dirname).mkdir(parents=True)
        args = build_ladder_args(source, info, rungs, out_dir, settings)
        load = os.getloadavg()[0]
        cpu = _children_cpu()  # only this ffmpeg is reaped meanwhile
        started = time.monotonic()
        # -progress pipe:1 goes to /dev/null: nothing to drain.
        process = await asyncio.create_subprocess_exec(
            *worker_command(args),
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
        return Run(elapsed, _children_cpu() - cpu, load)
    finally:
        await asyncio.to_thread(shutil.rmtree, out_dir, True)


async def run_cover(source: Path, info: MediaInfo, settings: WorkerSettings, scratch: Path) -> Run:
    """The worker's own cover extraction (``extract_cover``), alone on the machine."""
    out_dir = Path(tempfile.mkdtemp(prefix="cover-", dir=scratch))
    try:
        # As in a job, the source sits in the work directory (the only one ffmpeg's sandbox
        # shows it).
        job_source = out_dir / "source"
        try:
            os.link(source, job_source)
        except OSError:
            await asyncio.to_thread(shutil.copyfile, source, job_source)
        load, cpu, started = os.getloadavg()[0], _children_cpu(), time.monotonic()
        await extract_cover(job_source, info, out_dir / "cover.jpg", settings)
        return Run(time.monotonic() - started, _children_cpu() - cpu, load)
    finally:
        await asyncio.to_thread(shutil.rmtree, out_dir, True)


def _show(run: Run) -> str:
    return f"{run.wall:.2f} s wall, {run.cpu:.1f} s CPU, load {run.load:.1f}"


async def measure(
    source: Path, settings: WorkerSettings, scratch: Path, timed_runs: int = 2
) -> LadderTimes:
    """Per-rung runs first (they also warm the caches: ffmpeg, libx264 and the clip, which
    was just written, are hot), then the one-process ladder ``timed_runs`` times."""
    info = await probe(source, settings)
    rungs = plan_ladder(info, settings)
    names = [f"{r.quality}:{r.width}x{r.height}" for r in rungs]
    times = LadderTimes(rungs=names)
    times.cover = await run_cover(source, info, settings, scratch)
    say(f"worker's cover command alone: {_show(times.cover)}")
    say(f"one process per rung, one after another: {', '.join(names)}")
    for rung, name in zip(rungs, names, strict=True):
        times.per_rung[name] = await run_ladder(source, info, [rung], settings, scratch)
        say(f"  {name}: {_show(times.per_rung[name])}")
    say(
        f"bare ladder, one process ({info.width}x{info.height}, {info.duration:.1f} s, "
        f"nice {NICENESS} as in the worker)"
    )
    for i in range(timed_runs):
        times.runs.append(await run_ladder(source, info, rungs, settings, scratch))
        say(f"  run {i + 1}/{timed_runs}: {_show(times.runs[-1])}")
    return times
