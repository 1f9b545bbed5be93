"""Running ffmpeg and ffprobe: argument lists (never a shell), confined by a ``Sandbox``
(minimal environment, death signal, resource limits, optionally no network), stderr drained
into structured logs while the process runs, ``-progress pipe:1`` parsed, a wall-clock
timeout, and terminate → kill → wait of the whole process group whenever the run times out
or the awaiting task is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from transcode_service.errors import PermanentError, RetryableError
from transcode_service.sandbox import Sandbox

log = structlog.get_logger(__name__)

# Hostile inputs can make ffmpeg print a warning per packet; keep logs readable.
MAX_LOGGED_STDERR_LINES = 200
KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Progress:
    """One block of ``-progress`` output."""

    out_time: float  # seconds of media written so far
    speed: float | None  # processing speed relative to real time ("2.5x")
    done: bool  # ffmpeg wrote progress=end


@dataclass
class ProcessResult:
    returncode: int
    elapsed: float
    stdout: bytes = b""
    stderr_tail: list[str] = field(default_factory=list)
    last_progress: Progress | None = None


class ProcessTimeout(PermanentError):
    """The run exceeded its wall-clock limit."""


ProgressCallback = Callable[[Progress], Awaitable[None]]


def parse_progress_block(values: dict[str, str]) -> Progress:
    """Turn the key=value pairs of one progress block into a ``Progress``."""
    out_time = 0.0
    raw = values.get("out_time_us") or values.get("out_time_ms")  # both are microseconds
    if raw and raw != "N/A":
        with contextlib.suppress(ValueError):
            out_time = max(0.0, int(raw) / 1_000_000)
    speed: float | None = None
    raw_speed = values.get("speed", "").strip().rstrip("x")
    if raw_speed and raw_speed != "N/A":
        with contextlib.suppress(ValueError):
            speed = float(raw_speed)
    return Progress(out_time=out_time, speed=speed, done=values.get("progress") == "end")


async def _drain_stderr(stream: asyncio.StreamReader, tool: str, tail: deque[str]) -> None:
    logged = 0
    suppressed = 0
    while True:
        raw = await stream.readline()
        if not raw:
            break
        line = raw.decode(errors="replace").rstrip()
        if not line:
            continue
        tail.append(line)
        if logged < MAX_LOGGED_STDERR_LINES:
            log.info("ffmpeg output", tool=tool, line=line)
            logged += 1
        else:
            suppressed += 1
    if suppressed:
        log.info("ffmpeg output suppressed", tool=tool, lines=suppressed)


async def _read_progress(
    stream: asyncio.StreamReader,
    on_progress: ProgressCallback | None,
    result: ProcessResult,
) -> None:
    block: dict[str, str] = {}
    while True:
        raw = await stream.readline()
        if not raw:
            break
        key, sep, value = raw.decode(errors="replace").strip().partition("=")
        if not sep:
            continue
        block[key] = value
        if key == "progress":  # last key of every block
            progress = parse_progress_block(block)
            result.last_progress = progress
            block = {}
            if on_progress is not None:
                try:
                    await on_progress(progress)
                except Exception:
                    # Progress is best effort; it must never stop the encode.
                    log.warning("progress callback failed", exc_info=True)


async def _read_all(stream: asyncio.StreamReader, limit: int, result: ProcessResult) -> None:
    chunks: list[bytes] = []
    total = 0
    while chunk := await stream.read(65536):
        total += len(chunk)
        if total > limit:
            raise PermanentError("the file's metadata is unreasonably large")
        chunks.append(chunk)
    result.stdout = b"".join(chunks)


def _signal_group(proc: asyncio.subprocess.Process, signum: signal.Signals) -> None:
    """Signal the run's process group (the spawned pid leads it: own session), which holds
    bwrap's sandboxed children too. Only while the leader is not reaped, so the group id
    cannot have been reused by an unrelated process."""
    if proc.returncode is not None:
        return
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError:  # not a group leader after all (should not happen)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """terminate → wait → kill → wait, tolerant of a process that already exited; then
    SIGKILL for whatever of its process group outlived it (bwrap's pid-namespace init
    ignores SIGTERM and can be left behind by its dead parent). The group id stays reserved
    while any member lives, so this cannot reach an unrelated process."""
    if proc.returncode is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_SECONDS)
        except TimeoutError:
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run_process(
    args: Sequence[str],
    *,
    time_limit: float,
    tool: str,
    on_progress: ProgressCallback | None = None,
    progress: bool = False,
    capture_stdout: bool = False,
    stdout_limit: int = 16 * 1024 * 1024,
    sandbox: Sandbox,
    on_started: Callable[[int], None] | None = None,
) -> ProcessResult:
    """Run ``args`` inside ``sandbox``; with ``progress`` stdout is read as ``-progress
    pipe:1`` output, with ``capture_stdout`` it is collected (bounded); ``on_started`` gets
    the pid (bwrap's, in that mode: ffmpeg is its descendant). Raises
    ``ProcessTimeout`` after ``time_limit`` seconds; a cancelled caller never leaves the
    process running."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *sandbox.command(args),
        env=sandbox.environment(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE
        if (progress or capture_stdout)
        else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        # Own session and process group: a Ctrl-C on the terminal reaches the worker, which
        # decides whether ffmpeg stops (shutdown grace), instead of killing ffmpeg behind its
        # back; the group lets _stop reach everything the run started. If the worker dies
        # instead, the sandbox's death signal (PR_SET_PDEATHSIG) ends the run.
        start_new_session=True,
    )
    if on_started is not None:
        # The caller may watch the process (e.g. its CPU time in /proc) or limit it further.
        on_started(proc.pid)
    log.info("process started", tool=tool, pid=proc.pid, sandbox=sandbox.mode)
    result = ProcessResult(returncode=-1, elapsed=0.0)
    tail: deque[str] = deque(maxlen=20)
    assert proc.stderr is not None
    readers = [asyncio.create_task(_drain_stderr(proc.stderr, tool, tail))]
    if progress:
        assert proc.stdout is not None
        readers.append(asyncio.create_task(_read_progress(proc.stdout, on_progress, result)))
    elif capture_stdout:
        assert proc.stdout is not None
        readers.append(asyncio.create_task(_read_all(proc.stdout, stdout_limit, result)))
    try:
        async with asyncio.timeout(time_limit):
            await proc.wait()
            await asyncio.gather(*readers)
    except TimeoutError:
        raise ProcessTimeout(
            f"processing took longer than the limit of {time_limit:.0f} s and was stopped"
        ) from None
    finally:
        # Covers timeout, cancellation (shutdown) and reader errors alike.
        await asyncio.shield(_stop(proc))
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    result.returncode = sandbox.returncode(proc.returncode) if proc.returncode is not None else -1
    result.elapsed = time.monotonic() - started
    result.stderr_tail = list(tail)
    return result


# How running out of the address-space cap shows in ffmpeg's output. An encoder that cannot
# open is one of them: the ladder's encoder parameters are ours, not the upload's, and x264
# fails to open without a message of its own when a thread's stack or buffers cannot be mapped
# (seen in a container, where more threads start than on the host).
MEMORY_SHORTAGE = re.compile(
    r"Cannot allocate memory|malloc of size \d+ failed|Error while opening encoder"
)


def check_result(result: ProcessResult, what: str) -> None:
    """Raise the right error for a failed run: killed by a signal or out of disk space is the
    machine's fault (retry); any other failure is the input's (permanent)."""
    if result.returncode == 0:
        return
    detail = next(
        (line for line in reversed(result.stderr_tail) if line.strip()), "no error output"
    )
    if result.returncode < 0:
        raise RetryableError(f"{what} was killed by signal {-result.returncode}")
    output = " ".join(result.stderr_tail)
    if "No space left on device" in output:
        raise RetryableError(f"{what} failed: no space left on device")
    if MEMORY_SHORTAGE.search(output):
        # Under the per-process cap the same input fails the same way again: no retry.
        raise PermanentError(
            f"{what} failed: the video needs more memory than the worker allows "
            "(worker.ffmpeg_max_memory_mb)"
        )
    raise PermanentError(f"{what} failed: {detail[:500]}")
