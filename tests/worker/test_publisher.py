"""The worker's publisher against the real RabbitMQ."""

from __future__ import annotations

import uuid

from aio_pika.abc import AbstractIncomingMessage

from harness.broker import Broker
from harness.polling import eventually
from shared.messages import CoverJob
from shared.settings import Settings
from tests.worker.support import new_video_id
from transcode_service.publisher import Publisher


async def test_delay_sends_the_copy_round_the_steps_delay_queue(
    broker: Broker, settings: Settings
) -> None:
    video_id = new_video_id()
    job = CoverJob(video_id=video_id, job_id=uuid.uuid4(), source_key=f"raw/{video_id}/x.mp4")
    channel = await broker.amqp.channel(publisher_confirms=True, on_return_raises=True)
    try:
        publisher = Publisher(channel, broker.topology, settings.rabbitmq)
        await publisher.start()
        queue = await publisher.delay(job.to_json(), "cover", 1, {"x-attempt": 3})
        assert queue == broker.topology.retry_queue("cover", 1)
        cover_queue = await channel.get_queue(broker.topology.cover_queue, ensure=False)

        async def returned_copy() -> AbstractIncomingMessage | None:
            # Jobs other tests left in the run's cover queue are dropped on the way.
            while (message := await cover_queue.get(no_ack=True, fail=False)) is not None:
                if message.body == job.to_json():
                    return message
            return None

        back = await eventually(returned_copy, lambda m: m is not None)
    finally:
        await channel.close()
    assert back is not None
    assert back.headers["x-attempt"] == 3
    # Back in the job queue because its time in the step's delay queue ran out.
    death = back.headers["x-death"]
    assert isinstance(death, list) and isinstance(death[0], dict)
    assert (death[0]["queue"], death[0]["reason"]) == (queue, "expired")
