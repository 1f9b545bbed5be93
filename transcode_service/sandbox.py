"""Where ffmpeg and ffprobe run: nothing to steal, nothing to reach, nothing left behind.

Every run gets a minimal environment (``PATH``, ``LANG``, ``TMPDIR``: no S3 keys, no broker
URL, no ``VIDEO_*`` settings) and the command is prefixed with small exec wrappers from
util-linux (Essential on Debian, so always there), each of which replaces itself with the
next, so the pid we spawned ends up being ffmpeg (or bwrap):

- ``setpriv --pdeathsig KILL``: the kernel SIGKILLs the process when the worker dies for any
  reason (SIGKILL, OOM killer, a supervisor's timeout). It survives the following execs. It
  fires when the *thread* that forked ends: asyncio forks in the event loop's thread, the
  worker's main thread. (A worker killed in the instant between the fork and setpriv's
  prctl would miss it; Python's ``preexec_fn`` could close that gap but is unsafe with
  threads, which aiobotocore and asyncio's executor use.)
- ``prlimit --core=0 --as=N``: no core dumps of a crashed decoder (a hostile input's memory
  could fill the disk) and an address-space cap, set *before* ffmpeg starts rather than
  after spawning, which would race with bwrap's own fork.

Mode ``bwrap`` adds bubblewrap (Debian package ``bubblewrap``): a new network namespace with
only its own loopback (the host and its 127.0.0.1 services are out of reach), a new pid
namespace and no ``/proc`` (the worker's ``/proc/<pid>/environ`` is out of reach),
read-only ``/usr`` and the few ``/etc`` files the dynamic linker needs, the job's own work
directory as the only writable and readable data, all capabilities dropped and
``--die-with-parent``. Mode ``none`` keeps the minimal environment and the wrappers but
leaves the network and file system as they are (ffmpeg could still read whatever the
worker's user can, the worker's ``/proc/<pid>/environ`` included); ``auto`` (the default)
uses bwrap when a trial run of ``ffmpeg -version`` inside it works (it did on the Debian 12
development machine as root, and as uid 10001 inside a rootful Podman container; it does
not where user namespaces are off) and ``none`` otherwise.
firejail and nsjail were not chosen: the first is setuid and large, the second is not
packaged for Debian 12; bwrap is what Flatpak relies on.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from shared.settings import FfmpegSandbox, WorkerSettings

ResolvedMode = Literal["bwrap", "none"]

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Top-level directories that are either symlinks into /usr (merged /usr) or hold libraries.
ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What the dynamic linker and libc read from /etc; nothing else of /etc is visible.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
TRIAL_TIMEOUT = 20.0
SIGNAL_MAX = 64  # SIGRTMAX on Linux


class SandboxUnavailable(RuntimeError):
    """``worker.ffmpeg_sandbox`` is ``bwrap`` but bwrap cannot run ffmpeg here."""


def minimal_environment(workdir: Path) -> dict[str, str]:
    """All a decoder needs. ``PATH`` is not a secret and may point at a custom ffmpeg."""
    return {
        "PATH": os.environ.get("PATH", DEFAULT_PATH),
        "LANG": "C.UTF-8",
        "TMPDIR": str(workdir),
    }


def bwrap_args(workdir: Path) -> list[str]:
    args = [
        "bwrap",
        "--unshare-all",  # net, pid, ipc, uts, cgroup, user (where possible)
        "--die-with-parent",
        "--cap-drop", "ALL",
        "--ro-bind", "/usr", "/usr",
        # No /proc at all: ffmpeg and x264 count CPUs with sched_getaffinity, and mounting
        # a proc filesystem is what container runtimes forbid ("Can't mount proc").
        "--dev", "/dev",
        "--tmpfs", "/tmp",
    ]  # fmt: skip
    for name in ROOT_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    workdir = workdir.resolve()
    return [*args, "--bind", str(workdir), str(workdir), "--chdir", str(workdir), "--"]


def wrapper_args(max_memory_mb: int) -> list[str]:
    limits = ["--core=0"]
    if max_memory_mb > 0:
        limit = max_memory_mb * 1024 * 1024
        limits.append(f"--as={limit}:{limit}")
    return ["setpriv", "--pdeathsig", "KILL", "--", "prlimit", *limits, "--"]


@dataclass(frozen=True)
class Sandbox:
    """How one ffmpeg/ffprobe run is confined: the resolved mode and the job's directory."""

    mode: ResolvedMode
    workdir: Path
    max_memory_mb: int = 0

    def command(self, args: Sequence[str]) -> list[str]:
        confine = bwrap_args(self.workdir) if self.mode == "bwrap" else []
        return [*wrapper_args(self.max_memory_mb), *confine, *args]

    def environment(self) -> dict[str, str]:
        return minimal_environment(self.workdir)

    def returncode(self, raw: int) -> int:
        """The command's exit status as if it were a direct child: bwrap reports a command
        killed by signal N as exit code 128 + N, where asyncio would say -N (a killed
        process is the machine's fault and retried; a failed one is the input's)."""
        if self.mode == "bwrap" and 128 < raw <= 128 + SIGNAL_MAX:
            return -(raw - 128)
        return raw


def _bwrap_trial() -> str | None:
    """Run ``ffmpeg -version`` inside bwrap; None when it works, else why not."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian package bubblewrap)"
    try:
        with tempfile.TemporaryDirectory(prefix="bwrap-trial-") as tmp:
            workdir = Path(tmp)
            done = subprocess.run(
                [*bwrap_args(workdir), "ffmpeg", "-hide_banner", "-version"],
                env=minimal_environment(workdir),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=TRIAL_TIMEOUT,
                check=False,
            )
    except (OSError, subprocess.TimeoutExpired) as exc:  # includes no writable TMPDIR
        return f"bwrap could not run: {exc}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bwrap failed: {detail[-1] if detail else f'exit code {done.returncode}'}"
    return None


@functools.cache
def resolve_mode(requested: FfmpegSandbox) -> tuple[ResolvedMode, str]:
    """The mode in use and why, decided once per process (the platform does not change).
    Blocks for the trial run (a few milliseconds): call it once at start-up."""
    if requested == "none":
        return "none", "worker.ffmpeg_sandbox is none"
    problem = _bwrap_trial()
    if problem is None:
        return "bwrap", "bwrap runs ffmpeg without network"
    if requested == "bwrap":
        raise SandboxUnavailable(f"worker.ffmpeg_sandbox is bwrap, but {problem}")
    return "none", f"{problem}; ffmpeg runs with a minimal environment only"


def sandbox_for(settings: WorkerSettings, workdir: Path) -> Sandbox:
    """The sandbox of one run whose files all live in ``workdir``."""
    mode, _ = resolve_mode(settings.ffmpeg_sandbox)
    return Sandbox(mode=mode, workdir=workdir, max_memory_mb=settings.ffmpeg_max_memory_mb)
