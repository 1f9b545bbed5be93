"""The janitor against the real SeaweedFS and MariaDB: abandoned uploads (single and
multipart) expire, late writes and ownerless multipart uploads are removed, replicas share
the work without handling a row twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from api_service.context import SESSIONS, STORAGE
from api_service.uploads.janitor import Janitor
from shared.settings import Settings
from tests.api import multipart as mp
from tests.api.helpers import complete, initiate, upload, video_row
from tests.api.support import Api, User, with_overrides
from tests.store import Store

ABANDONED_AFTER = 3600


def _janitor(api: Api, **upload: int) -> Janitor:
    settings = with_overrides(
        api.settings, upload={"abandoned_after": ABANDONED_AFTER, "orphan_grace": 0, **upload}
    )
    return Janitor(settings, api.app[SESSIONS], api.app[STORAGE])


async def _age(db: AsyncEngine, *video_ids: int) -> None:
    """Make uploads look started two hours ago."""
    async with db.begin() as conn:
        for video_id in video_ids:
            await conn.execute(
                text("UPDATE videos SET created_at = created_at - INTERVAL 2 HOUR WHERE id = :id"),
                {"id": video_id},
            )


async def test_janitor_cleans_abandoned_single_and_multipart_uploads(
    api: Api, user: User, db: AsyncEngine, store: Store, http: aiohttp.ClientSession, clip: Path
) -> None:
    single = await initiate(api, user, clip.name)
    await upload(clip, single["upload_url"])
    multi = await mp.create(api, user)
    await mp.upload_part(api, user, http, multi, 1, os.urandom(5 * mp.MIB))
    late_part_url = await mp.sign(api, user, multi, 2)
    fresh = await mp.create(api, user)  # in progress, not old: must survive
    await mp.upload_part(api, user, http, fresh, 1, os.urandom(1000))
    await _age(db, single["video_id"], multi["video_id"])

    report = await _janitor(api).run_once()
    assert report.expired == 2
    for video_id in (single["video_id"], multi["video_id"]):
        video = await video_row(db, video_id)
        assert video is not None
        assert video["status"] == "failed"
        assert video["error"] == f"upload abandoned: not completed within {ABANDONED_AFTER} seconds"
        assert await store.keys(f"raw/{video_id}/") == []
        assert await store.pending_uploads(f"raw/{video_id}/") == []
    status, _ = await mp.put_part(http, late_part_url, os.urandom(1000))
    assert status == 404
    status, body = await complete(api, user, single["video_id"])
    assert status == 409 and "failed" in body["error"]["message"]
    # The fresh upload is untouched and still completes.
    fresh_row = await video_row(db, fresh["video_id"])
    assert fresh_row is not None and fresh_row["status"] == "uploading"
    assert await store.pending_uploads(f"raw/{fresh['video_id']}/") == [fresh["uploadId"]]
    # A second pass finds nothing new of these.
    assert (await _janitor(api).run_once()).expired == 0


async def test_upload_url_used_after_delete_leaves_nothing(
    api: Api, user: User, db: AsyncEngine, store: Store, clip: Path
) -> None:
    init = await initiate(api, user, clip.name)
    video_id = init["video_id"]
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    # The presigned PUT still reaches the store, but the object has no row: it is never
    # processed (no video to complete) and the janitor removes it.
    await upload(clip, init["upload_url"])
    assert len(await store.keys(f"raw/{video_id}/")) == 1
    status, _ = await complete(api, user, video_id)
    assert status == 404
    report = await _janitor(api).run_once()
    assert report.orphan_objects >= 1
    assert await store.keys(f"raw/{video_id}/") == []
    assert await video_row(db, video_id) is None


async def test_late_write_after_rejection_and_ownerless_multipart_are_removed(
    api: Api, user: User, store: Store, http: aiohttp.ClientSession, clip: Path
) -> None:
    # An aborted upload's video is failed; a single PUT to its key afterwards is garbage.
    multi = await mp.create(api, user)
    status, _ = await mp.abort(api, user, multi)
    assert status == 200
    await store.put(multi["key"], b"late")
    # A multipart upload under raw/ that no row owns (e.g. a create that crashed).
    stray_key = "raw/999999999/00000000-0000-0000-0000-000000000000.mp4"
    stray = await store.s3.create_multipart_upload(Bucket=store.bucket, Key=stray_key)
    # The grace keeps young ownerless uploads (a create in progress); the late object goes.
    report = await _janitor(api, orphan_grace=3600).run_once()
    assert report.orphan_objects >= 1
    assert await store.keys(multi["key"]) == []
    assert await store.pending_uploads("raw/999999999/") == [stray["UploadId"]]
    # A pass without the grace aborts the ownerless upload.
    report = await _janitor(api).run_once()
    assert report.orphan_uploads >= 1
    assert await store.pending_uploads("raw/999999999/") == []


async def test_replicas_share_expiry_without_double_handling(
    api: Api, user: User, db: AsyncEngine
) -> None:
    ids = [(await initiate(api, user, f"v{i}.mp4"))["video_id"] for i in range(6)]
    await _age(db, *ids)
    reports = await asyncio.gather(
        *(_janitor(api, janitor_batch_size=2).expire_abandoned(_now()) for _ in range(3))
    )
    assert sum(reports) == 6
    for video_id in ids:
        video = await video_row(db, video_id)
        assert video is not None and video["status"] == "failed"


def _now() -> datetime:

    return datetime.now(UTC)


async def test_video_janitor_console_script(
    api: Api, user: User, db: AsyncEngine, settings_env: dict[str, str], settings: Settings
) -> None:
    init = await initiate(api, user, "old.mp4")
    await _age(db, init["video_id"])
    env = {**settings_env, "VIDEO_UPLOAD__ABANDONED_AFTER": str(ABANDONED_AFTER)}
    done = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("video-janitor"))],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert report["expired"] >= 1
    video = await video_row(db, init["video_id"])
    assert video is not None and video["status"] == "failed"
