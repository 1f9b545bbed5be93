"""The AMQP side of the worker's events: consume the events queue and the dead-letter watch
queue, apply each message in a transaction (``events.apply``) and ack only after it
committed; while the database is unavailable the message is held and retried
(``events.retry``), so nothing is lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.db.models import Video
from api_service.events.apply import apply_event, mark_failed
from api_service.events.dead_letters import dead_letter_reason
from api_service.events.retry import ack_after
from api_service.issued_jobs import job_issued_for
from api_service.metrics import Metrics
from api_service.storage import Storage
from api_service.webhooks import outbox as webhook_outbox
from shared.inflight import InFlight
from shared.keys import video_prefixes
from shared.messages import (
    AnyEvent,
    CoverReady,
    MessageError,
    TranscodeSucceeded,
    issued_job_id,
    parse_event,
    parse_job,
)
from shared.topology import Topology, declare_topology

log = structlog.get_logger(__name__)

PREFETCH = 32

MessageHandler = Callable[[AbstractIncomingMessage], Coroutine[Any, Any, None]]


@dataclass
class EventConsumer:
    topology: Topology
    sessions: async_sessionmaker[AsyncSession]
    storage: Storage
    connection: AbstractRobustConnection
    metrics: Metrics
    _channel: AbstractChannel | None = field(init=False, default=None)
    _consumers: list[tuple[AbstractQueue, ConsumerTag]] = field(init=False, default_factory=list)
    _in_flight: InFlight = field(init=False, default_factory=InFlight)

    async def start(self) -> None:
        channel = await self.connection.channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=PREFETCH)
        await declare_topology(channel, self.topology)
        events = await channel.declare_queue(self.topology.events_queue, passive=True)
        watch = await channel.declare_queue(self.topology.dead_letter_watch_queue, passive=True)
        self._consumers = [
            (events, await events.consume(self._spawning(self._on_event))),
            (watch, await watch.consume(self._spawning(self._on_dead_letter))),
        ]

    async def stop(self, grace: float) -> None:
        """Stop taking messages, let the ones in hand finish, then close the channel.
        Handlers still retrying after ``grace`` (database down) are cancelled: their
        messages are requeued and redelivered."""
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        self._consumers = []
        await self._in_flight.drain(grace)
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()

    def _spawning(self, handler: MessageHandler) -> MessageHandler:
        async def on_message(message: AbstractIncomingMessage) -> None:
            self._in_flight.spawn(handler(message))

        return on_message

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body)
        except MessageError as exc:
            log.warning("malformed event dead-lettered", error=str(exc))
            await message.reject(requeue=False)
            return
        with structlog.contextvars.bound_contextvars(
            video_id=event.video_id, job_id=str(event.job_id), event=event.type
        ):

            async def work() -> None:
                async with self.sessions() as session, session.begin():
                    if not await job_issued_for(session, event.job_id, event.video_id):
                        self.metrics.events_applied.labels(event.type, "unknown_job").inc()
                        log.warning("event of a job not issued for this video ignored")
                        return
                    exists = await session.get(Video, event.video_id) is not None
                    changed = exists and await apply_event(session, event)
                    if changed:  # same transaction: no webhook without its change
                        await webhook_outbox.on_event_applied(session, event)
                if not exists:
                    await self._discard_late_outputs(event)
                outcome = "applied" if changed else "ignored"
                self.metrics.events_applied.labels(event.type, outcome).inc()
                log.info("event consumed", outcome=outcome)

            await ack_after(message, work)

    async def _discard_late_outputs(self, event: AnyEvent) -> None:
        # The video was deleted while a job ran; whatever it uploaded since is garbage.
        if isinstance(event, CoverReady | TranscodeSucceeded):
            for prefix in video_prefixes(event.video_id):
                await self.storage.delete_prefix(prefix)
            log.info("outputs of a deleted video removed")

    async def _on_dead_letter(self, message: AbstractIncomingMessage) -> None:
        try:
            job = parse_job(message.body)
        except MessageError:
            # A dead-lettered event or garbage: the copy in the dead-letter queue is kept
            # for people; there is no video to update.
            self.metrics.dead_letters.labels("other").inc()
            log.warning("dead letter seen", headers=str(message.headers)[:500])
            await message.ack()
            return
        self.metrics.dead_letters.labels(job.kind).inc()
        reason = f"{job.kind}: {dead_letter_reason(dict(message.headers or {}))}"
        with structlog.contextvars.bound_contextvars(video_id=job.video_id, job_id=str(job.job_id)):

            async def work() -> None:
                async with self.sessions() as session, session.begin():
                    if not await job_issued_for(session, issued_job_id(job), job.video_id):
                        log.warning("dead letter of a job not issued for this video ignored")
                        return
                    changed = await mark_failed(session, job.video_id, reason)
                    if changed:
                        await webhook_outbox.on_failed(session, job.video_id, reason)
                log.warning("dead-lettered job", reason=reason, marked_failed=changed)

            await ack_after(message, work)
