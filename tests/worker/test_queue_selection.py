"""worker.queues against the real broker: a cover-only worker never takes a transcode job
(the transcode stays ready in its queue with no consumer), a transcode-only worker does."""

from __future__ import annotations

import uuid
from pathlib import Path

from aio_pika.abc import AbstractRobustConnection

from harness.broker import Broker
from shared.messages import CoverJob, CoverReady, TranscodeJob, TranscodeSucceeded
from tests.media import make_video
from tests.store import Store
from tests.worker.support import WorkerFactory, new_video_id


async def _depth(amqp: AbstractRobustConnection, name: str) -> tuple[int, int]:
    """(ready messages, consumers) of queue ``name``."""
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
        result = queue.declaration_result
        return result.message_count or 0, result.consumer_count or 0
    finally:
        await channel.close()


async def test_cover_only_worker_leaves_transcodes_to_transcode_workers(
    broker: Broker,
    start_worker: WorkerFactory,
    store: Store,
    tmp_path: Path,
) -> None:
    video_id = new_video_id()
    key = await store.upload_source(make_video(tmp_path / "in.mp4", duration=2), video_id)
    transcode = TranscodeJob(video_id=video_id, job_id=uuid.uuid4(), source_key=key)
    cover = CoverJob(video_id=video_id, job_id=uuid.uuid4(), source_key=key)
    async with broker.events() as events:
        cover_worker = await start_worker(queues=["cover"])
        assert await _depth(broker.amqp, broker.topology.transcode_queue) == (0, 0)
        # Transcode published first: were the cover worker consuming its queue, it would
        # have the transcode in hand before the cover's event arrives.
        await broker.publish(transcode)
        await broker.publish(cover)
        ready = await events.wait_for(cover.job_id, ("cover_ready", "transcode_failed"))
        assert isinstance(ready, CoverReady)
        assert await _depth(broker.amqp, broker.topology.transcode_queue) == (1, 0)
        assert events.of(transcode.job_id) == []

        await start_worker(queues=["transcode"], rungs=[160])
        done = await events.wait_for(transcode.job_id, ("transcode_succeeded", "transcode_failed"))
        assert isinstance(done, TranscodeSucceeded)
        assert await _depth(broker.amqp, broker.topology.cover_queue) == (0, 1)
    assert await cover_worker.shutdown() == 0
