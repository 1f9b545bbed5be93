"""The outbox with the broker really unreachable (connections refused), then back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.helpers import eventually, rows, uploaded_video
from tests.api.proxy import TcpProxy
from tests.api.support import Api, JobTap, User


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
            within=20,
        )
        assert all(r["sent_at"] is None for r in pending)
        await asyncio.sleep(1.0)
        assert all(r["sent_at"] is None for r in await _outbox(db, video_id))
        assert await job_tap.for_video(video_id) == []
        metrics = await (await api.client.get("/metrics")).text()
        assert "outbox_pending 2.0" in metrics
    finally:
        await broker_proxy.start()

    jobs = await eventually(lambda: job_tap.for_video(video_id), lambda j: len(j) == 2, 30)
    assert sorted(j.routing_key for j in jobs) == ["cover", "transcode"]
    sent = await _outbox(db, video_id)
    assert all(r["sent_at"] is not None and r["last_error"] is None for r in sent)
    await eventually(lambda: _ready_status(api), lambda s: s == 200, within=15)
