"""The one declaration of the RabbitMQ topology, called by both services at start-up.

    jobs exchange (direct) --"cover"-----> cover queue (quorum)      --dead letters--+
                           --"transcode"-> transcode queue (quorum)  --dead letters--+
    retry delay queues (quorum, TTL) --expire--> jobs exchange                        |
    events exchange (topic) --"event.#"--> events queue (quorum)     --dead letters--+
                                                                                      v
    dead-letter exchange (fanout) --> dead-letter queue (kept for people to inspect)
                                  --> dead-letter watch queue (the API marks videos failed)

Job and event queues are quorum queues: replicated, durable, with a delivery limit so a
message that keeps crashing consumers is dead-lettered by the broker instead of looping, and
with at-least-once dead-lettering so a dead letter is never dropped on the way.
Declaring twice is harmless: the arguments are identical every time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel

from shared.messages import JobKind
from shared.settings import RabbitMQSettings, WorkerQueue

# Headers the services put on messages.
HEADER_ATTEMPT = "x-attempt"  # transient-failure attempts so far (1 on the first run)
HEADER_FAILURE_REASON = "x-failure-reason"  # why a message was dead-lettered on purpose
# Headers travel with every delivery of the message; a reason is cut to this length.
FAILURE_REASON_HEADER_MAX = 1000


@dataclass(frozen=True)
class Topology:
    jobs_exchange: str
    events_exchange: str
    dead_letter_exchange: str
    cover_queue: str
    transcode_queue: str
    events_queue: str
    dead_letter_queue: str
    dead_letter_watch_queue: str
    retry_delays_ms: tuple[int, ...]
    delivery_limit: int

    @classmethod
    def from_settings(cls, settings: RabbitMQSettings) -> Topology:
        p = settings.prefix
        return cls(
            jobs_exchange=f"{p}video.jobs",
            events_exchange=f"{p}video.events",
            dead_letter_exchange=f"{p}video.dlx",
            cover_queue=f"{p}{settings.cover_queue}",
            transcode_queue=f"{p}{settings.transcode_queue}",
            events_queue=f"{p}{settings.events_queue}",
            dead_letter_queue=f"{p}video.dead_letters",
            dead_letter_watch_queue=f"{p}video.dead_letters.watch",
            retry_delays_ms=tuple(settings.retry_delays_ms),
            delivery_limit=settings.delivery_limit,
        )

    def job_queue(self, kind: JobKind) -> str:
        return self.cover_queue if kind == "cover" else self.transcode_queue

    def queue_of(self, name: WorkerQueue) -> str:
        """The (prefixed) job queue behind a ``worker.queues`` entry."""
        return self.cover_queue if name == "cover" else self.transcode_queue

    def retry_queue(self, kind: JobKind, step: int) -> str:
        """Delay queue for the given backoff step (clamped to the last one)."""
        return f"{self.jobs_exchange}.retry.{kind}.{self.retry_delay_ms(step)}ms"

    def retry_delay_ms(self, step: int) -> int:
        return self.retry_delays_ms[min(max(step, 0), len(self.retry_delays_ms) - 1)]

    def all_queues(self) -> list[str]:
        queues = [
            self.cover_queue,
            self.transcode_queue,
            self.events_queue,
            self.dead_letter_queue,
            self.dead_letter_watch_queue,
        ]
        for kind in ("cover", "transcode"):
            for step in range(len(self.retry_delays_ms)):
                queues.append(self.retry_queue(kind, step))
        return queues

    def all_exchanges(self) -> list[str]:
        return [self.jobs_exchange, self.events_exchange, self.dead_letter_exchange]


def _quorum_args(topology: Topology, **extra: Any) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": topology.dead_letter_exchange,
        "x-dead-letter-strategy": "at-least-once",
        # at-least-once dead-lettering requires reject-publish overflow.
        "x-overflow": "reject-publish",
        "x-delivery-limit": topology.delivery_limit,
        **extra,
    }


async def declare_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Declare every exchange, queue and binding. Idempotent."""
    jobs = await channel.declare_exchange(
        topology.jobs_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    events = await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    dlx = await channel.declare_exchange(
        topology.dead_letter_exchange, aio_pika.ExchangeType.FANOUT, durable=True
    )

    for name in (topology.dead_letter_queue, topology.dead_letter_watch_queue):
        # Dead-letter queues have no DLX of their own: nothing is dead-lettered twice.
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(dlx, routing_key="")

    for kind in ("cover", "transcode"):
        queue = await channel.declare_queue(
            topology.job_queue(kind),
            durable=True,
            arguments=_quorum_args(topology),
        )
        await queue.bind(jobs, routing_key=kind)
        for step, delay in enumerate(topology.retry_delays_ms):
            # A delay queue has no consumer: messages wait for their TTL, then dead-letter
            # back to the jobs exchange under the job's routing key.
            await channel.declare_queue(
                topology.retry_queue(kind, step),
                durable=True,
                arguments={
                    "x-queue-type": "quorum",
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": topology.jobs_exchange,
                    "x-dead-letter-routing-key": kind,
                    "x-dead-letter-strategy": "at-least-once",
                    "x-overflow": "reject-publish",
                },
            )

    events_queue = await channel.declare_queue(
        topology.events_queue, durable=True, arguments=_quorum_args(topology)
    )
    await events_queue.bind(events, routing_key="event.#")


async def delete_topology(channel: AbstractChannel, topology: Topology) -> None:
    """Remove everything declare_topology made (used by tests to clean up a run)."""
    for name in topology.all_queues():
        await channel.queue_delete(name)
    for name in topology.all_exchanges():
        await channel.exchange_delete(name)
