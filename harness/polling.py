"""Waiting for a condition instead of for a fixed time: a busy machine makes everything
slower, so every wait polls for what it needs and only gives up after a generous bound."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

# Long enough for a machine shared by several CPU-heavy jobs; a passing wait returns as soon
# as its condition holds, so the bound only matters when something is really wrong.
DEFAULT_WITHIN = 60.0


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool] = bool,
    within: float = DEFAULT_WITHIN,
    interval: float = 0.1,
) -> T:
    """Await ``probe()`` until ``accept`` holds for its value and return that value; after
    ``within`` seconds fail with the last value seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within} s; last value: {value!r}")
        await asyncio.sleep(interval)


async def wait_until(
    condition: Callable[[], bool], within: float = DEFAULT_WITHIN, interval: float = 0.1
) -> None:
    """``eventually`` for a plain (synchronous) condition."""

    async def check() -> bool:
        return condition()

    await eventually(check, within=within, interval=interval)
