"""Did this API issue the job an event claims to come from?

Every job is written to the outbox with its job id as ``message_id`` and the video it is
for, and sent rows are kept, so the outbox is the register of issued jobs. An event whose
``job_id`` is not there for its ``video_id`` (forged by someone who can publish to the
broker, or a job meant for another video) is ignored: it could otherwise mark any video
online with someone else's outputs.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.db.models import OutboxMessage


async def job_issued_for(session: AsyncSession, job_id: uuid.UUID, video_id: int) -> bool:
    found = await session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.message_id == str(job_id), OutboxMessage.video_id == video_id
        )
    )
    return found is not None
