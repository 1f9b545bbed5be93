"""Finding processes by what they run, from /proc, so tests check real pids: the ffmpeg
inside bwrap has no pid the worker ever saw."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with contextlib.suppress(FileNotFoundError):
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    return False


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile, or not ours to read
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def pids_with_arg(*needles: str, program: str | None = None) -> list[int]:
    """Live processes with, for each of ``needles``, an argument containing it (and, if
    given, whose program is named ``program``), this test process excepted."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        args = _cmdline(int(entry.name))
        if not args or (program is not None and Path(args[0]).name != program):
            continue
        matched = all(any(needle in arg for arg in args[1:]) for needle in needles)
        if matched and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
