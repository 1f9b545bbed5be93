"""When to ack, retry or requeue a message whose database work failed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from aio_pika.abc import AbstractIncomingMessage

from api_service.unavailable import is_database_unavailable

log = structlog.get_logger(__name__)

RETRY_FOR_SECONDS = 30.0
_FIRST_DELAY = 0.5
_MAX_DELAY = 5.0


async def ack_after(message: AbstractIncomingMessage, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` then ack. While the database is unreachable the message is held and
    retried for as long as it takes (a requeue would count towards the queue's delivery
    limit and eventually dead-letter a perfectly good event). Any other error is retried
    briefly, then requeued, so a poison message ends in the dead-letter queue. Cancelled
    (shutdown): the message is requeued."""
    delay = _FIRST_DELAY
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETRY_FOR_SECONDS
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            raise
        except Exception as exc:
            transient = is_database_unavailable(exc)
            if not transient and loop.time() >= deadline:
                log.error("could not apply message, requeueing", error=repr(exc))
                await message.nack(requeue=True)
                return
            log.warning("applying message failed, retrying", error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
            continue
        await message.ack()
        return
