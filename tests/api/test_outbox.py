"""The outbox with the broker really unreachable (connections refused), then back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api_service.context import OUTBOX_WAKE, TOPOLOGY
from harness.polling import eventually
from shared.messages import CoverJob
from tests.api.helpers import rows, uploaded_video
from tests.api.proxy import TcpProxy
from tests.api.support import Api, JobTap, User, start_api


async def _outbox(db: AsyncEngine, video_id: int) -> list[dict[str, Any]]:
    return await rows(db, "SELECT * FROM outbox WHERE video_id = :id ORDER BY id", id=video_id)


async def _ready_status(api: Api) -> int:
    resp = await api.client.get("/readyz")
    return resp.status


async def test_jobs_wait_in_outbox_while_broker_down(
    api: Api, user: User, db: AsyncEngine, clip: Path, job_tap: JobTap, broker_proxy: TcpProxy
) -> None:
    await broker_proxy.stop()
    try:
        resp = await api.client.get("/readyz")
        assert resp.status == 503
        assert resp.headers["Retry-After"]
        assert (await resp.json())["checks"]["broker"] == "unavailable"

        # complete needs only the database: the jobs wait in the outbox.
        video_id = await uploaded_video(api, user, clip)
        pending = await eventually(
            lambda: _outbox(db, video_id),
            lambda r: len(r) == 2 and all(x["attempts"] >= 1 and x["last_error"] for x in r[:1]),
        )
        assert all(r["sent_at"] is None for r in pending)
        # The relay tries again (and fails again) instead of giving up or losing the jobs.
        tried = pending[0]["attempts"]
        pending = await eventually(
            lambda: _outbox(db, video_id), lambda r: r[0]["attempts"] > tried and r[0]["last_error"]
        )
        assert all(r["sent_at"] is None for r in pending)
        assert await job_tap.for_video(video_id) == []
        metrics = await (await api.client.get("/metrics")).text()
        assert "outbox_pending 2.0" in metrics
    finally:
        await broker_proxy.start()

    jobs = await eventually(lambda: job_tap.for_video(video_id), lambda j: len(j) == 2)
    assert sorted(j.routing_key for j in jobs) == ["cover", "transcode"]
    # The relay marks its batch sent when the batch's transaction commits, which can be just
    # after the broker delivered the jobs.
    await eventually(
        lambda: _outbox(db, video_id),
        lambda rows: all(r["sent_at"] is not None and r["last_error"] is None for r in rows),
    )
    await eventually(lambda: _ready_status(api), lambda s: s == 200)


async def test_replicas_never_publish_a_row_twice(
    api: Api, db: AsyncEngine, job_tap: JobTap
) -> None:
    """Three relays (the main app and two more replicas) race over the same backlog."""
    replicas = [
        await start_api(api.settings, run_relay=True, run_consumers=False) for _ in range(2)
    ]
    try:
        base = 10**12 + int(uuid.uuid4().int % 10**6) * 1000
        jobs = [
            CoverJob(video_id=base + i, job_id=uuid.uuid4(), source_key=f"raw/{base + i}/x.mp4")
            for i in range(120)
        ]
        async with db.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO outbox (message_id, video_id, exchange, routing_key, body,"
                    " created_at, attempts) VALUES (:m, :v, :e, 'cover', :b, NOW(6), 0)"
                ),
                [
                    {
                        "m": str(j.job_id),
                        "v": j.video_id,
                        "e": api.app[TOPOLOGY].jobs_exchange,
                        "b": j.to_json().decode(),
                    }
                    for j in jobs
                ],
            )
        for replica in replicas:
            replica.app[OUTBOX_WAKE].set()
        wanted = {str(j.job_id) for j in jobs}

        async def seen() -> list[str]:
            return [t.message_id or "" for t in await job_tap.drain() if t.message_id in wanted]

        await eventually(seen, lambda ids: len(set(ids)) == len(wanted))
        # Every row is marked sent only after its publish was confirmed: once all are, any
        # duplicate publish is in the tap's queue ahead of the tap's own barrier.
        await eventually(
            lambda: rows(
                db,
                "SELECT id FROM outbox WHERE video_id >= :lo AND video_id < :hi"
                " AND sent_at IS NULL",
                lo=base,
                hi=base + 1000,
            ),
            lambda unsent: unsent == [],
        )
        await job_tap.caught_up()
        published = await seen()
        assert sorted(published) == sorted(wanted)  # each exactly once
        sent = await rows(
            db,
            "SELECT attempts FROM outbox WHERE video_id >= :lo AND video_id < :hi",
            lo=base,
            hi=base + 1000,
        )
        assert len(sent) == 120 and all(r["attempts"] == 1 for r in sent)
    finally:
        for replica in replicas:
            await replica.client.close()
