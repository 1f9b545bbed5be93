"""Peak resident memory of the worker process, read from /proc."""

from __future__ import annotations

from pathlib import Path

from bench.console import BenchError


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise BenchError(f"cannot read /proc/{pid}/status: {exc}") from None
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _kib(value: str) -> int:
    number, _, unit = value.partition(" ")
    if unit.strip() != "kB":
        raise BenchError(f"unexpected /proc value {value!r}")
    return int(number)


def check_is_worker(pid: int) -> None:
    """The pid must be the Python worker itself (not a shell or wrapper, not ffmpeg)."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    name = _status(pid).get("Name", "")
    if b"transcode_service" not in cmdline or not name.startswith("python"):
        raise BenchError(f"pid {pid} is {name} {cmdline!r}, not the Python worker")


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set size (children such as ffmpeg not included)."""
    return _kib(_status(pid)["VmHWM"])
