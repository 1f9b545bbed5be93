"""DELETE removes every object and row of a video; a job still running ends harmlessly."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from harness.polling import eventually
from shared.keys import cover_key, raw_prefix, video_prefixes
from shared.messages import CoverReady
from tests.api.helpers import rows, video_row
from tests.api.support import Api, User
from tests.api.videos import Videos

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


async def _keys(s3: S3Client, bucket: str, video_id: int) -> list[str]:
    keys: list[str] = []
    for prefix in video_prefixes(video_id):
        listed = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
        keys += [obj["Key"] for obj in listed.get("Contents", [])]
    return keys


async def test_delete_removes_objects_and_rows(
    api: Api, user: User, db: AsyncEngine, s3: S3Client, videos: Videos
) -> None:
    bucket = api.settings.s3.bucket
    video_id = await videos.uploaded(user)
    prefix = f"processed/{video_id}/"
    for name in ("cover.jpg", "master.m3u8", "hls_240p/240p.m3u8", "hls_240p/240p_00000.ts"):
        await s3.put_object(Bucket=bucket, Key=prefix + name, Body=b"x")
    await videos.succeed(video_id, heights=(240,), duration=1, source_size=1)
    await eventually(
        lambda: rows(db, "SELECT id FROM video_sources WHERE video_id = :id", id=video_id),
        lambda r: len(r) == 1,
    )
    assert len(await _keys(s3, bucket, video_id)) == 5  # 4 outputs + the raw upload

    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert await _keys(s3, bucket, video_id) == []
    assert await video_row(db, video_id) is None
    assert await rows(db, "SELECT id FROM video_sources WHERE video_id = :id", id=video_id) == []
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 404
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 404


async def test_job_finishing_after_delete_is_harmless(
    api: Api, user: User, db: AsyncEngine, s3: S3Client, videos: Videos
) -> None:
    bucket = api.settings.s3.bucket
    video_id = await videos.uploaded(user)
    # Sent to the worker before the delete: its late event is legitimate.
    cover_job = await videos.issued_job(video_id, "cover")
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert await _keys(s3, bucket, video_id) == []

    # The cover job was still running: it uploads its output and reports back.
    await s3.put_object(Bucket=bucket, Key=cover_key(video_id), Body=b"late")
    await videos.publish(
        CoverReady(video_id=video_id, job_id=cover_job, cover_key=cover_key(video_id))
    )
    await eventually(lambda: _keys(s3, bucket, video_id), lambda keys: keys == [])
    assert await video_row(db, video_id) is None
    resp = await api.client.get("/healthz")
    assert resp.status == 200


async def test_delete_uploading_video_drops_raw_object(
    api: Api, user: User, db: AsyncEngine, s3: S3Client
) -> None:
    resp = await api.client.post(
        "/api/v1/videos/upload/initiate", json={"file_name": "a.webm"}, headers=user.headers
    )
    video_id = (await resp.json())["video_id"]
    await s3.put_object(
        Bucket=api.settings.s3.bucket, Key=raw_prefix(video_id) + "x.webm", Body=b"x"
    )
    resp = await api.client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    assert await _keys(s3, api.settings.s3.bucket, video_id) == []
    assert await video_row(db, video_id) is None
