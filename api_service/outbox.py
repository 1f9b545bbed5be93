"""The outbox relay: publishes jobs written in the same transaction as the status change.

Rows are claimed with ``SELECT ... FOR UPDATE SKIP LOCKED``, so several API replicas relay
in parallel without ever publishing the same row twice in a race. Each publish waits for
the broker's confirm (persistent, mandatory: an unroutable job is an error, not a silent
drop); only then is the row marked sent. With the broker down rows stay pending, the error
is recorded on them and the relay backs off and keeps trying.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.db.models import OUTBOX_ERROR_MAX, OutboxMessage, utcnow
from api_service.metrics import Metrics
from shared.settings import Settings
from shared.topology import HEADER_ATTEMPT

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 5.0


@dataclass
class OutboxRelay:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    connection: AbstractRobustConnection
    metrics: Metrics
    wake: asyncio.Event
    _channel: AbstractChannel | None = field(init=False, default=None)

    async def _get_channel(self) -> AbstractChannel:
        if self._channel is None or self._channel.is_closed:
            # Confirms on, and a returned (unroutable) message raises instead of vanishing.
            self._channel = await self.connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
        return self._channel

    async def _publish(self, row: OutboxMessage) -> None:
        channel = await self._get_channel()
        exchange = await channel.get_exchange(row.exchange, ensure=False)
        message = aio_pika.Message(
            body=row.body.encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=row.message_id,
            headers={HEADER_ATTEMPT: 1},
        )
        await exchange.publish(message, routing_key=row.routing_key, mandatory=True)

    async def _publish_bounded(self, row: OutboxMessage) -> None:
        # Bounded as a whole: while a robust connection reconnects, opening a channel can
        # wait as long as publishing; the row locks must not be held indefinitely.
        await asyncio.wait_for(self._publish(row), self.settings.rabbitmq.publish_timeout)

    async def relay_once(self) -> tuple[int, bool]:
        """Publish one batch; returns (rows published, whether the batch was full)."""
        batch = self.settings.server.outbox_batch_size
        published = 0
        failure: BaseException | None = None
        async with self.sessions() as session, session.begin():
            rows = list(
                await session.scalars(
                    select(OutboxMessage)
                    .where(OutboxMessage.sent_at.is_(None))
                    .order_by(OutboxMessage.id)
                    .limit(batch)
                    .with_for_update(skip_locked=True)
                )
            )
            for row in rows:
                row.attempts += 1
                try:
                    await self._publish_bounded(row)
                except Exception as exc:
                    # Kept pending; the rest of the batch waits for the next round.
                    row.last_error = repr(exc)[:OUTBOX_ERROR_MAX]
                    failure = exc
                    self.metrics.outbox_failures.inc()
                    break
                row.sent_at = utcnow()
                row.last_error = None
                published += 1
                log.info(
                    "job published",
                    video_id=row.video_id,
                    job_id=row.message_id,
                    routing_key=row.routing_key,
                )
        self.metrics.outbox_published.inc(published)
        if failure is not None:
            raise failure
        return published, len(rows) == batch

    async def _update_backlog(self) -> None:
        async with self.sessions() as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None))
            )
        self.metrics.outbox_pending.set(pending or 0)

    async def run(self) -> None:
        """Relay until cancelled; never dies of a broker or database error."""
        poll = self.settings.server.outbox_poll_interval
        failures = 0
        while True:
            full = False
            try:
                _, full = await self.relay_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                log.warning("outbox relay failed", error=repr(exc), failures=failures)
            with contextlib.suppress(Exception):
                await self._update_backlog()
            if full and failures == 0:
                continue
            delay = poll if failures == 0 else min(poll * 2**failures, MAX_BACKOFF_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
            self.wake.clear()

    async def close(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            with contextlib.suppress(Exception):
                await self._channel.close()
