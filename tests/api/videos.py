"""A test's videos through the real upload flow and the real event path: uploaded as a client
does, then moved on by the events a worker would publish for the jobs the API issued (the API
applies no others). No worker runs in the API tests: the test plays its part."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.broker import publish_event
from harness.polling import eventually
from shared.messages import AnyEvent, TranscodeFailed
from shared.topology import Topology
from tests.api.helpers import issued_job, succeeded, uploaded_video, video_row
from tests.api.online import SEGMENT_SECONDS, put_playlists
from tests.api.support import Api, User
from tests.store import Store


@dataclass(frozen=True)
class Videos:
    """The upload flow and the worker's part in it, against the API under test."""

    api: Api
    db: AsyncEngine
    store: Store
    clip: Path  # what every video here is uploaded from
    amqp: AbstractRobustConnection
    topology: Topology

    async def uploaded(self, user: User, **initiate_fields: Any) -> int:
        """A video of ``user`` in status transcoding: initiated, uploaded and completed."""
        return await uploaded_video(self.api, user, self.clip, **initiate_fields)

    async def issued_job(self, video_id: int, kind: str) -> uuid.UUID:
        return await issued_job(self.db, video_id, kind)

    async def publish(self, event: AnyEvent) -> None:
        """As the worker sends it."""
        await publish_event(self.amqp, self.topology, event)

    async def succeed(self, video_id: int, **fields: Any) -> None:
        """The worker's success event for the video's transcode job; ``fields`` as of
        ``succeeded``."""
        job_id = await self.issued_job(video_id, "transcode")
        await self.publish(succeeded(video_id, job_id, **fields))

    async def fail(self, video_id: int, reason: str) -> None:
        """The worker's permanent failure of the video's transcode job."""
        failure = TranscodeFailed(
            video_id=video_id,
            job_id=await self.issued_job(video_id, "transcode"),
            job_kind="transcode",
            reason=reason,
            permanent=True,
        )
        await self.publish(failure)

    async def wait_for_status(self, video_id: int, status: str) -> None:
        async def current() -> Any:
            found = await video_row(self.db, video_id)
            return found and found["status"]

        await eventually(current, lambda s: s == status)

    async def online(self, user: User, *, segments: int = 3, **initiate_fields: Any) -> int:
        """A video of ``user`` made online with hand-written playlists of ``segments``
        segments (no encode)."""
        video_id = await self.uploaded(user, **initiate_fields)
        rendition = await put_playlists(self.store, video_id, segments)
        await self.succeed(
            video_id,
            renditions=[rendition],
            duration=float(segments * SEGMENT_SECONDS),
            source_size=1,
        )
        await self.wait_for_status(video_id, "online")
        return video_id
