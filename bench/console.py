"""Progress lines while the bench runs, so a person sees it is alive."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from harness.errors import HarnessError

_STARTED = time.monotonic()


class BenchError(Exception):
    """A step failed; the message is shown to the person running the bench, without a trace."""


def elapsed() -> float:
    return time.monotonic() - _STARTED


def say(message: str) -> None:
    print(f"[{elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


def run_scenario(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> int:
    """Run a bench entry point: a failed step is one line and exit 2, Ctrl-C exit 130."""
    try:
        asyncio.run(scenario())
    except (BenchError, HarnessError) as exc:
        say(f"bench failed: {exc}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    return 0
