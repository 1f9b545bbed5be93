"""Applies the worker's events to the database, idempotently, and watches dead letters.

Every change is a guarded statement (``... WHERE status = 'transcoding'``) or an upsert on a
unique key, so an event delivered twice, late or out of order changes nothing twice. A
message is acked only after its transaction committed; while the database is unavailable the
message is held and retried, then requeued, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from sqlalchemy import func, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.db.models import VIDEO_ERROR_MAX, Video, VideoSource
from api_service.metrics import Metrics
from api_service.storage import Storage
from api_service.unavailable import is_database_unavailable
from shared.keys import processed_prefix, video_prefixes
from shared.messages import (
    FAILURE_REASON_MAX,
    AnyEvent,
    CoverReady,
    MessageError,
    TranscodeProgress,
    TranscodeSucceeded,
    parse_event,
    parse_job,
)
from shared.status import VideoStatus
from shared.topology import HEADER_FAILURE_REASON, Topology, declare_topology

log = structlog.get_logger(__name__)

PREFETCH = 32
RETRY_FOR_SECONDS = 30.0

_DEATH_REASONS = {
    "delivery_limit": "the job was dead-lettered after repeatedly failing or crashing workers",
    "rejected": "the job was rejected as malformed or could not be processed",
    "expired": "the job expired before a worker could run it",
    "maxlen": "the job queue was full",
}


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def dead_letter_reason(headers: dict[str, Any] | None) -> str:
    """A reason a person can read, from the worker's header or the broker's x-death."""
    headers = headers or {}
    explicit = headers.get(HEADER_FAILURE_REASON)
    if explicit:
        return _text(explicit)[:FAILURE_REASON_MAX]
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = _text(deaths[0].get("reason", ""))
        return _DEATH_REASONS.get(reason, f"the job was dead-lettered ({reason or 'unknown'})")
    return "the job was dead-lettered"


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


def _own_key(video_id: int, key: str) -> bool:
    return key.startswith(processed_prefix(video_id)) and ".." not in key.split("/")


async def apply_event(session: AsyncSession, event: AnyEvent) -> bool:
    """Apply one event inside the caller's transaction; True if the video row changed."""
    video_id = event.video_id
    if isinstance(event, CoverReady):
        if not _own_key(video_id, event.cover_key):
            log.warning("cover key outside the video's prefix", cover_key=event.cover_key)
            return False
        values: dict[str, Any] = {"cover_key": event.cover_key}
        # The transcode result is authoritative; the probe data of the cover only fills gaps.
        if event.duration is not None:
            values["duration"] = func.coalesce(Video.duration, event.duration)
        if event.width is not None:
            values["width"] = func.coalesce(Video.width, event.width)
        if event.height is not None:
            values["height"] = func.coalesce(Video.height, event.height)
        result = await session.execute(
            update(Video)
            .where(
                Video.id == video_id,
                Video.status.in_([VideoStatus.TRANSCODING, VideoStatus.ONLINE]),
                (Video.cover_key.is_(None)) | (Video.cover_key != event.cover_key),
            )
            .values(**values)
        )
        return _rowcount(result) > 0

    if isinstance(event, TranscodeProgress):
        result = await session.execute(
            update(Video)
            .where(
                Video.id == video_id,
                Video.status == VideoStatus.TRANSCODING,
                Video.progress < event.percent,
            )
            .values(progress=event.percent)
        )
        return _rowcount(result) > 0

    if isinstance(event, TranscodeSucceeded):
        keys = [event.master_key, *(r.playlist_key for r in event.renditions)]
        if not all(_own_key(video_id, key) for key in keys):
            log.warning("transcode result names keys outside the video's prefix")
            return False
        result = await session.execute(
            update(Video)
            .where(Video.id == video_id, Video.status == VideoStatus.TRANSCODING)
            .values(
                status=VideoStatus.ONLINE,
                progress=100.0,
                master_key=event.master_key,
                duration=event.duration,
                width=event.width,
                height=event.height,
                error=None,
            )
        )
        if _rowcount(result) == 0:
            return False
        insert = mysql_insert(VideoSource).values(
            [
                {
                    "video_id": video_id,
                    "quality": r.quality,
                    "format": r.format,
                    "playlist_key": r.playlist_key,
                    "width": r.width,
                    "height": r.height,
                    "bandwidth": r.bandwidth,
                }
                for r in event.renditions
            ]
        )
        await session.execute(
            insert.on_duplicate_key_update(
                playlist_key=insert.inserted.playlist_key,
                width=insert.inserted.width,
                height=insert.inserted.height,
                bandwidth=insert.inserted.bandwidth,
            )
        )
        return True

    result = await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status == VideoStatus.TRANSCODING)
        .values(
            status=VideoStatus.FAILED, error=f"{event.job_kind}: {event.reason}"[:VIDEO_ERROR_MAX]
        )
    )
    return _rowcount(result) > 0


async def mark_failed(session: AsyncSession, video_id: int, reason: str) -> bool:
    result = await session.execute(
        update(Video)
        .where(Video.id == video_id, Video.status == VideoStatus.TRANSCODING)
        .values(status=VideoStatus.FAILED, error=reason[:VIDEO_ERROR_MAX])
    )
    return _rowcount(result) > 0


class EventConsumer:
    def __init__(
        self,
        topology: Topology,
        sessions: async_sessionmaker[AsyncSession],
        storage: Storage,
        connection: AbstractRobustConnection,
        metrics: Metrics,
    ) -> None:
        self._topology = topology
        self._sessions = sessions
        self._storage = storage
        self._connection = connection
        self._metrics = metrics
        self._channel: AbstractChannel | None = None
        self._consumers: list[tuple[AbstractQueue, ConsumerTag]] = []
        self._in_flight = 0
        self._handlers: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        channel = await self._connection.channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=PREFETCH)
        await declare_topology(channel, self._topology)
        events = await channel.declare_queue(self._topology.events_queue, passive=True)
        watch = await channel.declare_queue(self._topology.dead_letter_watch_queue, passive=True)
        self._consumers = [
            (events, await events.consume(self._tracked(self._on_event))),
            (watch, await watch.consume(self._tracked(self._on_dead_letter))),
        ]

    async def stop(self, grace: float) -> None:
        """Stop taking messages, let the ones in hand finish, then close the channel."""
        for queue, tag in self._consumers:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)
        self._consumers = []
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            # Still retrying (database down): give up; the unacked messages are redelivered.
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()

    def _tracked(
        self, handler: Callable[[AbstractIncomingMessage], Awaitable[None]]
    ) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        async def run(message: AbstractIncomingMessage) -> None:
            self._in_flight += 1
            self._idle.clear()
            task = asyncio.current_task()
            if task is not None:
                self._handlers.add(task)
            try:
                await handler(message)
            finally:
                self._handlers.discard(task)
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        return run

    async def _with_retry(
        self, message: AbstractIncomingMessage, work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work`` then ack. While the database is unreachable the message is held and
        retried for as long as it takes (a requeue would count towards the queue's delivery
        limit and eventually dead-letter a perfectly good event). Any other error is retried
        briefly, then requeued, so a poison message ends in the dead-letter queue."""
        delay = 0.5
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_FOR_SECONDS
        while True:
            try:
                await work()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await message.nack(requeue=True)
                raise
            except Exception as exc:
                transient = is_database_unavailable(exc)
                if not transient and loop.time() >= deadline:
                    log.error("could not apply message, requeueing", error=repr(exc))
                    await message.nack(requeue=True)
                    return
                log.warning("applying message failed, retrying", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            await message.ack()
            return

    async def _on_event(self, message: AbstractIncomingMessage) -> None:
        try:
            event = parse_event(message.body)
        except MessageError as exc:
            log.warning("malformed event dead-lettered", error=str(exc))
            await message.reject(requeue=False)
            return
        with structlog.contextvars.bound_contextvars(
            video_id=event.video_id, job_id=str(event.job_id), event=event.type
        ):

            async def work() -> None:
                async with self._sessions() as session, session.begin():
                    exists = await session.get(Video, event.video_id) is not None
                    changed = exists and await apply_event(session, event)
                if not exists:
                    await self._discard_late_outputs(event)
                outcome = "applied" if changed else "ignored"
                self._metrics.events_applied.labels(event.type, outcome).inc()
                log.info("event consumed", outcome=outcome)

            await self._with_retry(message, work)

    async def _discard_late_outputs(self, event: AnyEvent) -> None:
        # The video was deleted while a job ran; whatever it uploaded since is garbage.
        if isinstance(event, CoverReady | TranscodeSucceeded):
            for prefix in video_prefixes(event.video_id):
                await self._storage.delete_prefix(prefix)
            log.info("outputs of a deleted video removed")

    async def _on_dead_letter(self, message: AbstractIncomingMessage) -> None:
        try:
            job = parse_job(message.body)
        except MessageError:
            # A dead-lettered event or garbage: the copy in the dead-letter queue is kept
            # for people; there is no video to update.
            self._metrics.dead_letters.labels("other").inc()
            log.warning("dead letter seen", headers=str(message.headers)[:500])
            await message.ack()
            return
        self._metrics.dead_letters.labels(job.kind).inc()
        reason = f"{job.kind}: {dead_letter_reason(dict(message.headers or {}))}"
        with structlog.contextvars.bound_contextvars(video_id=job.video_id, job_id=str(job.job_id)):

            async def work() -> None:
                async with self._sessions() as session, session.begin():
                    changed = await mark_failed(session, job.video_id, reason)
                log.warning("dead-lettered job", reason=reason, marked_failed=changed)

            await self._with_retry(message, work)
