"""Deliveries are written in the transaction that changes the video, so an event is never
lost nor sent for a change that was rolled back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.db.models import Video, WebhookDelivery, WebhookEndpoint
from shared.messages import AnyEvent, TranscodeFailed, TranscodeSucceeded

VIDEO_PROCESSING = "video.processing"
VIDEO_READY = "video.ready"
VIDEO_FAILED = "video.failed"


async def enqueue(
    session: AsyncSession, video_id: int, event_type: str, data: dict[str, Any]
) -> int:
    """One delivery per endpoint of the video's owner; returns how many."""
    owner = await session.scalar(select(Video.owner_id).where(Video.id == video_id))
    if owner is None:
        return 0
    endpoints = list(
        await session.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.owner_id == owner))
    )
    if not endpoints:
        return 0
    message_id = f"msg_{uuid.uuid4().hex}"
    payload = json.dumps(
        {
            "type": event_type,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {"video_id": video_id, **data},
        },
        separators=(",", ":"),
    )
    session.add_all(
        WebhookDelivery(
            endpoint_id=endpoint,
            message_id=message_id,
            event_type=event_type,
            video_id=video_id,
            payload=payload,
        )
        for endpoint in endpoints
    )
    return len(endpoints)


async def on_event_applied(session: AsyncSession, event: AnyEvent) -> None:
    """Called in the transaction that applied a worker event (only when it changed the row,
    so a redelivered event sends nothing twice)."""
    if isinstance(event, TranscodeSucceeded):
        await enqueue(
            session,
            event.video_id,
            VIDEO_READY,
            {"status": "online", "duration": event.duration, "renditions": len(event.renditions)},
        )
    elif isinstance(event, TranscodeFailed):
        await enqueue(
            session,
            event.video_id,
            VIDEO_FAILED,
            {"status": "failed", "error": f"{event.job_kind}: {event.reason}"[:4000]},
        )


async def on_failed(session: AsyncSession, video_id: int, reason: str) -> None:
    await enqueue(session, video_id, VIDEO_FAILED, {"status": "failed", "error": reason[:4000]})
