"""The one topology declaration, against the real RabbitMQ."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractRobustConnection

from harness.polling import eventually
from shared.messages import CoverJob
from shared.topology import Topology, declare_topology


@pytest.fixture
async def channel(amqp: AbstractRobustConnection) -> AsyncIterator[AbstractChannel]:
    """The test's own channel, closed after it whether it passed or not."""
    channel = await amqp.channel()
    yield channel
    await channel.close()


async def _get(channel: AbstractChannel, queue_name: str, job: CoverJob) -> AbstractIncomingMessage:
    """The next copy of ``job`` in ``queue_name`` (unacked), waiting for it to arrive.
    Messages of other tests left in the run's queues (dead letters of the API tests, for
    one) are dropped on the way."""
    queue = await channel.get_queue(queue_name, ensure=False)

    async def next_copy() -> AbstractIncomingMessage | None:
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            if message.body == job.to_json():
                return message
            await message.ack()
        return None

    message = await eventually(next_copy, lambda m: m is not None)
    assert message is not None
    return message


def _death_reason(message: AbstractIncomingMessage) -> str:
    """The reason of the latest dead-lettering, from the broker's x-death header."""
    death = message.headers.get("x-death")
    assert isinstance(death, list) and death, f"no x-death header: {message.headers}"
    first = death[0]
    assert isinstance(first, dict)
    return str(first["reason"])


async def _take_dead_letter(
    channel: AbstractChannel, topology: Topology, job: CoverJob, reason: str
) -> None:
    """Takes ``job`` from the dead-letter queue, dead-lettered for ``reason``, and the fanout
    copy for the API's watcher from its queue."""
    dead = await _get(channel, topology.dead_letter_queue, job)
    assert dead.body == job.to_json()
    assert _death_reason(dead) == reason
    await dead.ack()
    watch = await _get(channel, topology.dead_letter_watch_queue, job)
    assert watch.body == job.to_json()
    await watch.ack()


async def _publish_job(channel: AbstractChannel, topology: Topology, job: CoverJob) -> None:
    exchange = await channel.get_exchange(topology.jobs_exchange, ensure=False)
    await exchange.publish(
        aio_pika.Message(job.to_json(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key="cover",
        mandatory=True,
    )


async def test_declaring_twice_is_harmless(
    channel: AbstractChannel, declared_topology: Topology
) -> None:
    await declare_topology(channel, declared_topology)
    await declare_topology(channel, declared_topology)
    # Still usable, and the queues are the quorum queues we asked for.
    for name in declared_topology.all_queues():
        queue = await channel.declare_queue(name, passive=True)
        assert queue.declaration_result.message_count is not None


async def test_rejected_job_lands_in_the_dead_letter_queue(
    channel: AbstractChannel, declared_topology: Topology
) -> None:
    job = CoverJob(video_id=1, job_id=uuid.uuid4(), source_key="raw/1/x.mp4")
    await _publish_job(channel, declared_topology, job)

    delivered = await _get(channel, declared_topology.cover_queue, job)
    assert delivered.body == job.to_json()
    await delivered.reject(requeue=False)
    await _take_dead_letter(channel, declared_topology, job, "rejected")


async def test_retry_queue_returns_the_job_after_its_delay(
    channel: AbstractChannel, declared_topology: Topology
) -> None:
    job = CoverJob(video_id=2, job_id=uuid.uuid4(), source_key="raw/2/x.mp4")
    # Timed from before the publish: on a busy machine the publish itself may take a while,
    # and the delay runs from when the broker has the message.
    loop = asyncio.get_running_loop()
    started = loop.time()
    await channel.default_exchange.publish(
        aio_pika.Message(job.to_json(), headers={"x-attempt": 2}),
        routing_key=declared_topology.retry_queue("cover", 0),
    )
    back = await _get(channel, declared_topology.cover_queue, job)
    waited = loop.time() - started
    assert back.body == job.to_json()
    assert back.headers["x-attempt"] == 2
    assert waited >= declared_topology.retry_delay_ms(0) / 1000 * 0.8
    await back.ack()


async def test_delivery_limit_dead_letters_a_message_that_keeps_coming_back(
    channel: AbstractChannel, declared_topology: Topology
) -> None:
    job = CoverJob(video_id=3, job_id=uuid.uuid4(), source_key="raw/3/x.mp4")
    await _publish_job(channel, declared_topology, job)
    # Returning it as a crashed consumer would, more times than the limit allows.
    for _ in range(declared_topology.delivery_limit + 1):
        message = await _get(channel, declared_topology.cover_queue, job)
        await message.nack(requeue=True)
    await _take_dead_letter(channel, declared_topology, job, "delivery_limit")
