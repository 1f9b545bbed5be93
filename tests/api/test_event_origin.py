"""Events are applied only when they come from a job the API issued for that video."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from harness.polling import eventually
from shared.messages import TranscodeFailed
from tests.api.helpers import succeeded, video_row
from tests.api.support import Api, User
from tests.api.videos import Videos

UNKNOWN = 'events_applied_total{outcome="unknown_job",type="%s"}'


async def test_forged_and_crossed_events_are_ignored(
    api: Api, user: User, db: AsyncEngine, videos: Videos
) -> None:
    victim = await videos.uploaded(user)
    other = await videos.uploaded(user)
    other_job = await videos.issued_job(other, "transcode")
    before = await api.metric(UNKNOWN % "transcode_succeeded")
    failed_before = await api.metric(UNKNOWN % "transcode_failed")

    # A job id nobody issued, and a real job of another video: neither touches the victim.
    await videos.publish(succeeded(victim, uuid.uuid4()))
    await videos.publish(succeeded(victim, other_job))
    forged_failure = TranscodeFailed(
        video_id=victim,
        job_id=uuid.uuid4(),
        job_kind="transcode",
        reason="forged",
        permanent=True,
    )
    await videos.publish(forged_failure)
    await eventually(lambda: api.metric(UNKNOWN % "transcode_succeeded"), lambda v: v == before + 2)
    await eventually(
        lambda: api.metric(UNKNOWN % "transcode_failed"), lambda v: v == failed_before + 1
    )
    row = await video_row(db, victim)
    assert row is not None
    assert row["status"] == "transcoding" and row["master_key"] is None and row["error"] is None

    # The job the API did issue for it is applied as before.
    await videos.succeed(victim)
    await videos.wait_for_status(victim, "online")
