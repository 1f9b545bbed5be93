"""Publishing with publisher confirms: every call returns only once the broker has taken
responsibility for the message (confirmed; unroutable messages raise instead of vanishing)."""

from __future__ import annotations

import uuid
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from shared.messages import (
    AnyEvent,
    AnyJob,
    JobKind,
    TranscodeProgress,
    event_routing_key,
    queue_kind,
)
from shared.settings import RabbitMQSettings
from shared.topology import Topology


def _job_copy(body: bytes, headers: dict[str, Any]) -> aio_pika.Message:
    """A persistent copy of a job, with a fresh message id (it is a new delivery)."""
    return aio_pika.Message(
        body=body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(uuid.uuid4()),
        headers=headers,
    )


class Publisher:
    """Owns nothing: the channel (opened with ``publisher_confirms=True`` and
    ``on_return_raises=True``) belongs to main()'s exit stack."""

    def __init__(
        self, channel: AbstractChannel, topology: Topology, settings: RabbitMQSettings
    ) -> None:
        self._channel = channel
        self._topology = topology
        self._timeout = settings.publish_timeout
        self._events: AbstractExchange | None = None
        self._dlx: AbstractExchange | None = None
        self._jobs: AbstractExchange | None = None

    async def start(self) -> None:
        self._jobs = await self._channel.get_exchange(self._topology.jobs_exchange)
        self._events = await self._channel.get_exchange(self._topology.events_exchange)
        self._dlx = await self._channel.get_exchange(self._topology.dead_letter_exchange)

    async def publish_event(self, event: AnyEvent) -> None:
        assert self._events is not None, "start() first"
        message = aio_pika.Message(
            body=event.to_json(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            # Progress events are many per job; everything else is one per job and type,
            # which lets consumers deduplicate a re-publication.
            message_id=(
                str(uuid.uuid4())
                if isinstance(event, TranscodeProgress)
                else f"{event.job_id}:{event.type}"
            ),
            type=event.type,
        )
        await self._events.publish(
            message, routing_key=event_routing_key(event), mandatory=True, timeout=self._timeout
        )

    async def publish_new_job(self, job: AnyJob) -> None:
        """Queue a new job as the API's relay does (a chunk job, published by its video's
        transcode job). The message id is the job id: the same job published twice is
        recognisable."""
        assert self._jobs is not None, "start() first"
        message = aio_pika.Message(
            body=job.to_json(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(job.job_id),
        )
        await self._jobs.publish(
            message, routing_key=queue_kind(job), mandatory=True, timeout=self._timeout
        )

    async def delay(self, body: bytes, kind: JobKind, step: int, headers: dict[str, Any]) -> str:
        """Put a copy of a job straight into the delay queue of backoff ``step`` through
        the default exchange; returns that queue's name."""
        queue = self._topology.retry_queue(kind, step)
        await self._channel.default_exchange.publish(
            _job_copy(body, headers), routing_key=queue, mandatory=True, timeout=self._timeout
        )
        return queue

    async def dead_letter(self, body: bytes, routing_key: str, headers: dict[str, Any]) -> None:
        """Park a job in the dead-letter queue on purpose (attempts exhausted)."""
        assert self._dlx is not None, "start() first"
        await self._dlx.publish(
            _job_copy(body, headers), routing_key=routing_key, mandatory=True, timeout=self._timeout
        )
