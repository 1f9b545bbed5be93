"""A broker-side lease so a job is never processed by two workers at once.

RabbitMQ closes a channel whose delivery stays unacked longer than ``consumer_timeout`` and
redelivers the message, possibly to another worker, while the first one is still running
ffmpeg. Before running a job a worker therefore declares an *exclusive* queue named after
the job. Exclusive queues belong to the connection, not the channel: the lease survives the
consumer channel being closed by the timeout, and it disappears when the process dies or
loses its connection, so a crash releases it. A second connection declaring the same
queue gets RESOURCE_LOCKED (405): the job is running elsewhere.

Within one process (same connection, so the declaration would succeed) an in-memory set
does the same job.
"""

from __future__ import annotations

import aiormq
import aiormq.abc
import structlog
from aio_pika.abc import AbstractConnection

log = structlog.get_logger(__name__)


class LeaseManager:
    def __init__(self, connection: AbstractConnection, prefix: str) -> None:
        self._connection = connection
        self._prefix = prefix
        self._held: set[str] = set()

    def name(self, kind: str, job_id: str) -> str:
        return f"{self._prefix}video.lease.{kind}.{job_id}"

    async def acquire(self, kind: str, job_id: str) -> bool:
        """True if this process now holds the lease, False if someone else does."""
        name = self.name(kind, job_id)
        if name in self._held:
            return False
        # A short-lived channel: a refused exclusive declaration closes the channel.
        channel = await self._raw_channel()
        try:
            await channel.queue_declare(
                name,
                exclusive=True,
                auto_delete=True,
                durable=False,
                # Exclusive queues must be classic, whatever the vhost's default type is.
                arguments={"x-queue-type": "classic"},
            )
        except aiormq.exceptions.ChannelLockedResource:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()
        self._held.add(name)
        return True

    async def _raw_channel(self) -> aiormq.abc.AbstractChannel:
        # A plain aiormq channel, not an aio-pika robust one: a robust channel closed by
        # the broker (RESOURCE_LOCKED) reopens itself, leaking one channel per refusal,
        # and would re-declare the lease after a reconnection.
        transport = self._connection.transport
        if transport is None:
            raise ConnectionError("not connected to the broker")
        return await transport.connection.channel()

    async def release(self, kind: str, job_id: str) -> None:
        name = self.name(kind, job_id)
        if name not in self._held:
            return
        self._held.discard(name)
        try:
            channel = await self._raw_channel()
            try:
                await channel.queue_delete(name)
            finally:
                await channel.close()
        except Exception:
            # The queue goes with the connection anyway; a failed release only delays a
            # redelivered copy until then.
            log.warning("lease release failed", lease=name, exc_info=True)
