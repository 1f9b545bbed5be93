"""One scratch directory per job, always removed.

Layout: ``{work_dir}/{pid}/{kind}-{job_id}``. The per-process level lets several workers
share one work_dir (tests, a single VM) while start-up clean-up removes only what a dead
process (or an earlier process with our own pid, e.g. pid 1 in a restarted container) left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def clean_stale(work_dir: Path) -> list[Path]:
    """Remove directories left by crashed runs. Returns what was removed."""
    removed: list[Path] = []
    if not work_dir.is_dir():
        return removed
    me = os.getpid()
    for entry in work_dir.iterdir():
        if not entry.is_dir():
            continue
        try:
            pid = int(entry.name)
        except ValueError:
            continue  # not ours
        if pid == me or not _pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("stale work directories removed", count=len(removed))
    return removed


@contextmanager
def job_workdir(work_dir: Path, kind: str, job_id: str) -> Iterator[Path]:
    """A fresh directory for one job, removed on success, failure and cancellation."""
    path = work_dir / str(os.getpid()) / f"{kind}-{job_id}"
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)  # a redelivery within this process
    path.mkdir(parents=True, mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def file_size(path: Path) -> int:
    """Size of a file in a job's scratch directory, 0 when missing. A local metadata call
    that takes microseconds, so it runs inline rather than in a thread."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def remove_file(path: Path) -> None:
    path.unlink(missing_ok=True)
