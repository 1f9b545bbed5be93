"""A ladder's CPU budget and stall detection: work bounded by what the file really holds.

The budget is computed from the measured content (duration x encoded frame rate x pixels
decoded and encoded, plus audio), not from anything the header claims. While ffmpeg runs,
its CPU time (with that of its descendants, e.g. under a sandbox wrapper) is read from
``/proc/<pid>/stat`` every second and its media time from
``-progress``; the run is stopped, as a permanent failure with a readable reason, when it
uses more CPU than its budget or when its media time advances slower than
``worker.min_speed`` x real time over a whole ``worker.speed_window``. ``RLIMIT_CPU`` is
set a little above the budget as a backstop in case the event loop falls behind (that
kill shows as a killed process, retried like one, each attempt under the same budget).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from shared.settings import WorkerSettings
from transcode_service.errors import PermanentError
from transcode_service.ffmpeg import ProcessResult, Progress, ProgressCallback, run_process
from transcode_service.ladder import Rung, output_fps
from transcode_service.probe import MediaInfo
from transcode_service.sandbox import Sandbox

log = structlog.get_logger(__name__)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_INTERVAL = 1.0
# The kernel's hard limit sits this far above the budget: normally the watchdog stops the
# run first, with a clear reason; the limit only catches a starved event loop.
BACKSTOP_FACTOR = 1.25
BACKSTOP_EXTRA_SECONDS = 30


class BudgetExceeded(PermanentError):
    """The run used more CPU than its content justifies, or stalled."""


def cpu_budget(info: MediaInfo, rungs: Sequence[Rung], settings: WorkerSettings) -> float:
    """CPU seconds a ladder of ``info`` may use (see the settings ``cpu_*``)."""
    fps = output_fps(info, settings)
    encoded = info.duration * fps * sum(r.width * r.height for r in rungs)
    # A still picture is decoded once per output frame from a small PNG; a video is
    # decoded at its own (measured) rate, which may be above the output rate.
    decoded = info.duration * max(fps, 0.0 if info.still else info.fps) * info.width * info.height
    audio = info.duration * len(rungs) if info.has_audio else 0.0
    return (
        settings.cpu_budget_base
        + settings.cpu_seconds_per_gigapixel * (encoded + decoded) / 1e9
        + settings.cpu_seconds_per_audio_second * audio
    )


def audio_cpu_budget(duration: float, settings: WorkerSettings) -> float:
    """CPU seconds one encode of ``duration`` seconds of sound may use (chunk_audio.py)."""
    return settings.cpu_budget_base + settings.cpu_seconds_per_audio_second * duration


def _stat_fields(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: split after its closing parenthesis.
    return raw[raw.rfind(b")") + 2 :].split()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        with (
            contextlib.suppress(OSError, ValueError),
            open(f"/proc/{pid}/task/{task}/children") as children,
        ):
            found += [int(child) for child in children.read().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants: the spawned pid may be a wrapper (a sandbox) whose
    child is the real ffmpeg."""
    tree: list[int] = []
    pending = [pid]
    while pending and len(tree) < 64:
        current = pending.pop()
        tree.append(current)
        pending += _children(current)
    return tree


def process_cpu_seconds(pids: Sequence[int]) -> float | None:
    """User + system CPU time of running processes (with their reaped children), from
    /proc; None once the first is gone."""
    total = 0.0
    for i, pid in enumerate(pids):
        fields = _stat_fields(pid)
        if fields is None:
            if i == 0:
                return None
            continue
        # utime, stime, cutime, cstime (fields 14-17 of proc(5)).
        total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


@dataclass
class Watchdog:
    budget: float  # CPU seconds
    min_speed: float  # x real time; 0 disables the stall check
    window: float  # seconds
    pid: int | None = None
    cpu_seconds: float = 0.0
    reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    _media_times: deque[tuple[float, float]] = field(default_factory=deque)
    _limited: set[int] = field(default_factory=set)

    def on_started(self, pid: int) -> None:
        self.pid = pid
        self.started = time.monotonic()
        self._media_times.append((self.started, 0.0))
        self._limit([pid])

    def _limit(self, pids: Sequence[int]) -> None:
        # Per process (RLIMIT_CPU counts each process's own time); set on every process of
        # the tree as it is first seen, so a sandbox's child gets it too.
        hard = int(self.budget * BACKSTOP_FACTOR + BACKSTOP_EXTRA_SECONDS)
        for pid in pids:
            if pid in self._limited:
                continue
            self._limited.add(pid)
            with contextlib.suppress(OSError, ValueError):
                resource.prlimit(pid, resource.RLIMIT_CPU, (hard, hard))

    def on_progress(self, progress: Progress) -> None:
        self._media_times.append((time.monotonic(), progress.out_time))

    def check(self, now: float) -> str | None:
        """The reason to stop the run now, if any."""
        if self.pid is not None:
            tree = process_tree(self.pid)
            self._limit(tree)
            cpu = process_cpu_seconds(tree)
            if cpu is not None:
                self.cpu_seconds = cpu
        if self.cpu_seconds > self.budget:
            return (
                f"processing used more than its CPU budget of {self.budget:.0f} s "
                "for this video's content and was stopped"
            )
        if self.min_speed <= 0 or now - self.started < self.window:
            return None
        # Media time reached by the start of the window: the last sample at or before it.
        while len(self._media_times) > 1 and self._media_times[1][0] <= now - self.window:
            self._media_times.popleft()
        advanced = self._media_times[-1][1] - self._media_times[0][1]
        if advanced < self.min_speed * self.window:
            return (
                f"processing stalled: {advanced:.1f} s of video in the last "
                f"{self.window:.0f} s (slower than {self.min_speed:g}x real time) and was stopped"
            )
        return None

    async def watch(self) -> None:
        """Returns (with ``reason`` set) when the run must be stopped."""
        while self.reason is None:
            await asyncio.sleep(SAMPLE_INTERVAL)
            self.reason = self.check(time.monotonic())


async def run_watched(
    args: Sequence[str],
    watchdog: Watchdog,
    *,
    on_progress: ProgressCallback | None = None,
    time_limit: float,
    tool: str,
    sandbox: Sandbox,
) -> ProcessResult:
    """``run_process`` with ``-progress`` under ``watchdog``: raises ``BudgetExceeded`` (and
    the process is stopped) when the watchdog trips."""

    async def progressed(progress: Progress) -> None:
        watchdog.on_progress(progress)
        if on_progress is not None:
            await on_progress(progress)

    run = asyncio.create_task(
        run_process(
            args,
            time_limit=time_limit,
            tool=tool,
            sandbox=sandbox,
            progress=True,
            on_progress=progressed,
            on_started=watchdog.on_started,
        )
    )
    watch = asyncio.create_task(watchdog.watch())
    try:
        await asyncio.wait({run, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Cancelling the run stops ffmpeg (run_process's terminate -> kill -> wait).
        watch.cancel()
        if not run.done():
            run.cancel()
        await asyncio.gather(run, watch, return_exceptions=True)
    if watchdog.reason is not None:
        log.warning(
            "ffmpeg stopped",
            tool=tool,
            reason=watchdog.reason,
            cpu_seconds=round(watchdog.cpu_seconds, 1),
            budget=round(watchdog.budget),
        )
        raise BudgetExceeded(watchdog.reason)
    if not watch.cancelled() and (error := watch.exception()) is not None:
        raise error  # the watchdog itself failed (the run was stopped with it)
    return run.result()
