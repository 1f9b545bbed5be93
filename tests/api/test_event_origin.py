"""Events are applied only when they come from a job the API issued for that video."""

from __future__ import annotations

import uuid
from pathlib import Path

from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.broker import publish_event
from harness.polling import eventually
from shared.keys import master_playlist_key, rendition_playlist_key
from shared.messages import Rendition, TranscodeFailed, TranscodeSucceeded
from shared.topology import Topology
from tests.api.helpers import issued_job, uploaded_video, video_row
from tests.api.support import Api, User

UNKNOWN = 'events_applied_total{outcome="unknown_job",type="%s"}'


async def _metric(api: Api, needle: str) -> float:
    text = await (await api.client.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith(needle):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _success(video_id: int, job_id: uuid.UUID) -> TranscodeSucceeded:
    return TranscodeSucceeded(
        video_id=video_id,
        job_id=job_id,
        master_key=master_playlist_key(video_id),
        renditions=[
            Rendition(
                quality="240p",
                width=320,
                height=240,
                bandwidth=1,
                playlist_key=rendition_playlist_key(video_id, 240),
            )
        ],
        duration=2.0,
        width=320,
        height=240,
        source_size=1,
    )


async def test_forged_and_crossed_events_are_ignored(
    api: Api,
    user: User,
    db: AsyncEngine,
    clip: Path,
    amqp: AbstractRobustConnection,
    declared_topology: Topology,
) -> None:
    victim = await uploaded_video(api, user, clip)
    other = await uploaded_video(api, user, clip)
    other_job = await issued_job(db, other, "transcode")
    before = await _metric(api, UNKNOWN % "transcode_succeeded")
    failed_before = await _metric(api, UNKNOWN % "transcode_failed")

    # A job id nobody issued, and a real job of another video: neither touches the victim.
    await publish_event(amqp, declared_topology, _success(victim, uuid.uuid4()))
    await publish_event(amqp, declared_topology, _success(victim, other_job))
    forged_failure = TranscodeFailed(
        video_id=victim,
        job_id=uuid.uuid4(),
        job_kind="transcode",
        reason="forged",
        permanent=True,
    )
    await publish_event(amqp, declared_topology, forged_failure)
    await eventually(
        lambda: _metric(api, UNKNOWN % "transcode_succeeded"), lambda v: v == before + 2
    )
    await eventually(
        lambda: _metric(api, UNKNOWN % "transcode_failed"), lambda v: v == failed_before + 1
    )
    row = await video_row(db, victim)
    assert row is not None
    assert row["status"] == "transcoding" and row["master_key"] is None and row["error"] is None

    # The job the API did issue for it is applied as before.
    job = await issued_job(db, victim, "transcode")
    await publish_event(amqp, declared_topology, _success(victim, job))

    async def status() -> object:
        found = await video_row(db, victim)
        return found and found["status"]

    await eventually(status, lambda s: s == "online")
