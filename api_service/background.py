"""Background loops that live as long as the application: the outbox relay, the webhook
dispatcher and the upload janitor each run in a task opened by a cleanup_ctx generator."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def background_task(loop: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """Run ``loop`` in a task for the duration of the block; on leaving it, cancel the task
    and wait until it has unwound (so nothing it uses is closed under it)."""
    task = asyncio.create_task(loop, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
