"""The deliveries a consumer is handling, each in its own task, so a shutdown can wait for
them for a grace period and then cancel the rest. Both services' consumers use it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class InFlight:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in a task of its own, tracked until it ends."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for every task, then cancel the ones still running
        and wait for them to unwind. Returns how many were cancelled."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)
        remaining = set(self._tasks)
        for task in remaining:
            task.cancel()
        if remaining:
            await asyncio.gather(*remaining, return_exceptions=True)
        return len(remaining)
