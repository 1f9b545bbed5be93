"""Progress lines while the bench runs, so a person sees it is alive."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


class BenchError(Exception):
    """A step failed; the message is shown to the person running the bench, without a trace."""


def elapsed() -> float:
    return time.monotonic() - _STARTED


def say(message: str) -> None:
    print(f"[{elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)
