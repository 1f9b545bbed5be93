"""DELETE removes every object and row of a video; a job still running ends harmlessly."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from harness.polling import eventually
from shared.keys import cover_key, raw_prefix, video_prefixes
from shared.messages import CoverReady
from tests.api.helpers import rows, video_row
from tests.api.support import Api, User
from tests.api.videos import Videos
from tests.store import Store


async def _keys(store: Store, video_id: int) -> list[str]:
    return [key for prefix in video_prefixes(video_id) for key in await store.keys(prefix)]


async def test_delete_removes_objects_and_rows(
    api: Api, user: User, db: AsyncEngine, store: Store, videos: Videos
) -> None:
    video_id = await videos.uploaded(user)
    prefix = f"processed/{video_id}/"
    for name in ("cover.jpg", "master.m3u8", "hls_240p/240p.m3u8", "hls_240p/240p_00000.ts"):
        await store.put(prefix + name, b"x")
    await videos.succeed(video_id, heights=(240,), duration=1, source_size=1)
    await eventually(
        lambda: rows(db, "SELECT id FROM video_sources WHERE video_id = :id", id=video_id),
        lambda r: len(r) == 1,
    )
    assert len(await _keys(store, video_id)) == 5  # 4 outputs + the raw upload

    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert await _keys(store, video_id) == []
    assert await video_row(db, video_id) is None
    assert await rows(db, "SELECT id FROM video_sources WHERE video_id = :id", id=video_id) == []
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 404
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 404


async def test_job_finishing_after_delete_is_harmless(
    api: Api, user: User, db: AsyncEngine, store: Store, videos: Videos
) -> None:
    video_id = await videos.uploaded(user)
    # Sent to the worker before the delete: its late event is legitimate.
    cover_job = await videos.issued_job(video_id, "cover")
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert await _keys(store, video_id) == []

    # The cover job was still running: it uploads its output and reports back.
    await store.put(cover_key(video_id), b"late")
    await videos.publish(
        CoverReady(video_id=video_id, job_id=cover_job, cover_key=cover_key(video_id))
    )
    await eventually(lambda: _keys(store, video_id), lambda keys: keys == [])
    assert await video_row(db, video_id) is None
    resp = await api.client.get("/healthz")
    assert resp.status == 200


async def test_delete_uploading_video_drops_raw_object(
    api: Api, user: User, db: AsyncEngine, store: Store
) -> None:
    resp = await api.client.post(
        "/api/v1/videos/upload/initiate", json={"file_name": "a.webm"}, headers=user.headers
    )
    video_id = (await resp.json())["video_id"]
    await store.put(raw_prefix(video_id) + "x.webm", b"x")
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert await _keys(store, video_id) == []
    assert await video_row(db, video_id) is None
