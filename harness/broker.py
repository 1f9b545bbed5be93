"""The broker from outside the services: publish a job or an event as the services do, watch
the events exchange, take or drop what sits in a queue."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from harness.polling import DEFAULT_WITHIN, eventually
from shared.messages import AnyEvent, AnyJob, event_routing_key, parse_event
from shared.topology import Topology

# The type of a message a watcher sends to its own private queue to learn that everything
# queued before it has been seen (the services never receive one).
BARRIER_TYPE = "harness.barrier"


async def publish(
    amqp: AbstractRobustConnection,
    exchange: str,
    body: bytes,
    routing_key: str,
    *,
    message_id: str | None = None,
    headers: dict[str, object] | None = None,
) -> None:
    """Publish as the services do: persistent, JSON, mandatory, with publisher confirms."""
    channel = await amqp.channel(publisher_confirms=True, on_return_raises=True)
    try:
        target = await channel.get_exchange(exchange)
        await target.publish(
            aio_pika.Message(
                body,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id or str(uuid.uuid4()),
                headers=headers or {},  # type: ignore[arg-type]
            ),
            routing_key=routing_key,
            mandatory=True,
        )
    finally:
        await channel.close()


async def publish_job(
    amqp: AbstractRobustConnection,
    topology: Topology,
    job: AnyJob | bytes,
    *,
    routing_key: str | None = None,
    message_id: str | None = None,
) -> None:
    """A job (or raw bytes, routed as a transcode job) as the API's outbox relay sends it."""
    if isinstance(job, bytes):
        body, key = job, routing_key or "transcode"
    else:
        body, key = job.to_json(), routing_key or job.kind
    await publish(amqp, topology.jobs_exchange, body, key, message_id=message_id)


async def publish_event(
    amqp: AbstractRobustConnection, topology: Topology, event: AnyEvent
) -> None:
    """An event as the worker sends it (message id = the job id)."""
    await publish(
        amqp,
        topology.events_exchange,
        event.to_json(),
        event_routing_key(event),
        message_id=str(event.job_id),
    )


class EventListener:
    """``async with EventListener(amqp, topology) as events``: a private queue bound to the
    events exchange, so it sees every event whoever else consumes the run's events queue."""

    def __init__(self, amqp: AbstractRobustConnection, topology: Topology) -> None:
        self._amqp = amqp
        self._topology = topology
        self.events: list[AnyEvent] = []
        self._barriers: set[str] = set()
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> EventListener:
        self._channel = await self._amqp.channel()
        self._queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        exchange = await self._channel.get_exchange(self._topology.events_exchange)
        await self._queue.bind(exchange, routing_key="event.#")
        await self._queue.consume(self._on_message, no_ack=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with self._changed:
            if message.type == BARRIER_TYPE:
                self._barriers.add(message.message_id or "")
            else:
                self.events.append(parse_event(message.body))
            self._changed.notify_all()

    def of(self, job_id: uuid.UUID, type_: str | None = None) -> list[AnyEvent]:
        return [e for e in self.events if e.job_id == job_id and (type_ is None or e.type == type_)]

    async def wait_for(
        self, job_id: uuid.UUID, types: tuple[str, ...], within: float = 120.0
    ) -> AnyEvent:
        """The first event of ``job_id`` whose type is one of ``types``."""

        def found() -> AnyEvent | None:
            return next((e for e in self.of(job_id) if e.type in types), None)

        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: found() is not None)
        event = found()
        assert event is not None
        return event

    async def caught_up(self, within: float = DEFAULT_WITHIN) -> None:
        """Return once every event already in this listener's queue has been seen.

        Publishers use confirms, so an event confirmed before this call sits in the queue
        before the barrier sent here, and the queue delivers in order: a check "no duplicate
        arrived" after this is a check, not a guess about how long delivery takes."""
        marker = str(uuid.uuid4())
        await self._channel.default_exchange.publish(
            aio_pika.Message(b"", type=BARRIER_TYPE, message_id=marker),
            routing_key=self._queue.name,
        )
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: marker in self._barriers)


async def drain_queue(amqp: AbstractRobustConnection, name: str) -> list[AbstractIncomingMessage]:
    """Take (and ack) every message currently in queue ``name``."""
    channel = await amqp.channel()
    taken: list[AbstractIncomingMessage] = []
    try:
        queue = await channel.get_queue(name)
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
    finally:
        await channel.close()
    return taken


async def wait_dead_letters(
    amqp: AbstractRobustConnection,
    topology: Topology,
    predicate: Callable[[AbstractIncomingMessage], bool],
    count: int = 1,
    within: float = DEFAULT_WITHIN,
) -> list[AbstractIncomingMessage]:
    """Take dead letters until ``count`` of them match ``predicate`` (others are dropped)."""
    found: list[AbstractIncomingMessage] = []

    async def more() -> int:
        found.extend(m for m in await drain_queue(amqp, topology.dead_letter_queue) if predicate(m))
        return len(found)

    await eventually(more, lambda n: n >= count, within=within, interval=0.2)
    return found


@dataclass(frozen=True)
class Broker:
    """One connection and the topology declared on it, so a test that publishes jobs and
    watches their events names the broker once instead of passing both everywhere."""

    amqp: AbstractRobustConnection
    topology: Topology

    async def publish(
        self,
        job: AnyJob | bytes,
        *,
        routing_key: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """:func:`publish_job` on this broker."""
        await publish_job(
            self.amqp, self.topology, job, routing_key=routing_key, message_id=message_id
        )

    def events(self) -> EventListener:
        """``async with broker.events() as events``: an :class:`EventListener` on this broker."""
        return EventListener(self.amqp, self.topology)

    async def dead_letters(
        self,
        predicate: Callable[[AbstractIncomingMessage], bool],
        count: int = 1,
        within: float = DEFAULT_WITHIN,
    ) -> list[AbstractIncomingMessage]:
        """:func:`wait_dead_letters` on this broker."""
        return await wait_dead_letters(self.amqp, self.topology, predicate, count, within)


async def purge_queues(channel: AbstractChannel, names: Iterable[str]) -> int:
    """Drop every message in the named queues; returns how many were dropped."""
    dropped = 0
    for name in names:
        queue = await channel.get_queue(name, ensure=False)
        result = await queue.purge()
        dropped += result.message_count or 0
    return dropped
