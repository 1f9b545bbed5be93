"""The janitor: nothing an abandoned upload wrote stays behind.

1. Videos still ``uploading`` after ``upload.abandoned_after`` seconds are claimed in small
   batches with ``SELECT … FOR UPDATE SKIP LOCKED`` (so several replicas share the work and
   never handle the same row), their multipart uploads aborted, their objects deleted, and the
   rows marked ``failed`` with a reason. A ``complete`` racing with the claim waits for the row
   lock and then finds the video failed (409).
2. Objects under ``raw/`` that no live row points at (no row, another key, or a failed video)
   are deleted: e.g. what a presigned URL wrote after its video was deleted or rejected.
3. Multipart uploads under ``raw/`` that no uploading row owns are aborted once they are older
   than ``upload.orphan_grace`` (a create in progress starts its S3 upload before its row
   records the id).

``video-janitor`` runs one pass (for a cron job); the API runs one every
``upload.janitor_interval`` seconds when that is above zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.background import background_task
from api_service.context import SESSIONS, SETTINGS, STORAGE
from api_service.db.engine import make_engine, make_sessionmaker
from api_service.db.models import Video
from api_service.storage import Storage, open_storage
from shared.entrypoint import start
from shared.keys import raw_prefix
from shared.settings import Settings
from shared.status import VideoStatus

log = structlog.get_logger(__name__)

RAW = "raw/"
_RAW_VIDEO_ID = re.compile(r"^raw/(\d{1,19})/")
_LISTING_BATCH = 500


@dataclass
class JanitorReport:
    expired: int = 0
    orphan_objects: int = 0
    orphan_uploads: int = 0


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


class Janitor:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], storage: Storage
    ) -> None:
        self.upload = settings.upload
        self.sessions = sessions
        self.storage = storage

    async def run_once(self, now: datetime | None = None) -> JanitorReport:
        now = now or datetime.now(UTC)
        report = JanitorReport()
        report.expired = await self.expire_abandoned(now)
        report.orphan_objects = await self.remove_orphan_objects()
        report.orphan_uploads = await self.abort_orphan_uploads(now)
        log.info("janitor pass", **asdict(report))
        return report

    async def expire_abandoned(self, now: datetime) -> int:
        cutoff = _naive_utc(now - timedelta(seconds=self.upload.abandoned_after))
        reason = f"upload abandoned: not completed within {self.upload.abandoned_after} seconds"
        expired = 0
        while True:
            async with self.sessions() as session, session.begin():
                videos = list(
                    await session.scalars(
                        select(Video)
                        .where(Video.status == VideoStatus.UPLOADING, Video.created_at < cutoff)
                        .order_by(Video.id)
                        .limit(self.upload.janitor_batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                for video in videos:
                    # Storage first: if it fails, the row stays uploading for the next pass.
                    await self.storage.abort_pending_under(raw_prefix(video.id))
                    await self.storage.delete_prefix(raw_prefix(video.id))
                    video.status = VideoStatus.FAILED
                    video.error = reason
                    video.upload_id = None
                    log.info("abandoned upload expired", video_id=video.id)
            expired += len(videos)
            if len(videos) < self.upload.janitor_batch_size:
                return expired

    async def _live_keys(self, video_ids: set[int]) -> dict[int, str]:
        if not video_ids:
            return {}
        async with self.sessions() as session:
            result = await session.execute(
                select(Video.id, Video.source_key).where(
                    Video.id.in_(video_ids), Video.status != VideoStatus.FAILED
                )
            )
            return {row.id: row.source_key for row in result if row.source_key}

    async def remove_orphan_objects(self) -> int:
        removed = 0
        batch: list[str] = []

        async def sweep() -> int:
            ids = {int(m[1]) for key in batch if (m := _RAW_VIDEO_ID.match(key))}
            live = await self._live_keys(ids)
            count = 0
            for key in batch:
                match = _RAW_VIDEO_ID.match(key)
                if match is None or live.get(int(match[1])) != key:
                    await self.storage.delete(key)
                    log.info("orphan object removed", key=key)
                    count += 1
            batch.clear()
            return count

        async for obj in self.storage.objects(RAW):
            batch.append(obj.key)
            if len(batch) >= _LISTING_BATCH:
                removed += await sweep()
        if batch:
            removed += await sweep()
        return removed

    async def abort_orphan_uploads(self, now: datetime) -> int:
        grace = timedelta(seconds=self.upload.orphan_grace)
        pending = [u for u in await self.storage.pending_uploads(RAW) if u.initiated < now - grace]
        if not pending:
            return 0
        async with self.sessions() as session:
            owned = set(
                await session.scalars(
                    select(Video.upload_id).where(
                        Video.upload_id.in_({u.upload_id for u in pending}),
                        Video.status == VideoStatus.UPLOADING,
                    )
                )
            )
        aborted = 0
        for upload in pending:
            if upload.upload_id not in owned:
                aborted += await self.storage.abort_multipart(upload.key, upload.upload_id)
                log.info("orphan multipart upload aborted", key=upload.key)
        return aborted


async def periodic_janitor(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: a janitor pass every ``upload.janitor_interval`` seconds."""
    interval = app[SETTINGS].upload.janitor_interval
    janitor = Janitor(app[SETTINGS], app[SESSIONS], app[STORAGE])

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await janitor.run_once()
            except Exception:
                # A dependency outage must not end the loop; the next pass retries.
                log.exception("janitor pass failed")

    async with background_task(loop(), "janitor"):
        yield


async def run(settings: Settings) -> JanitorReport:
    engine = make_engine(settings.database)
    try:
        async with open_storage(settings.s3) as storage:
            return await Janitor(settings, make_sessionmaker(engine), storage).run_once()
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="video-janitor",
        description="One pass: expire abandoned uploads, remove raw objects and multipart "
        "uploads that no video owns. Safe to run on several replicas at once.",
    )
    parser.parse_args()
    settings = start()
    report = asyncio.run(run(settings))
    print(json.dumps(asdict(report)))


if __name__ == "__main__":
    main()
