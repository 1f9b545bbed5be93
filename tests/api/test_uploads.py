"""initiate → curl -T → complete, with every validation and state error."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.polling import eventually
from tests.api.helpers import (
    complete,
    file_size,
    initiate,
    rows,
    upload,
    uploaded_video,
    video_row,
)
from tests.api.support import Api, JobTap, User, start_api, with_overrides
from tests.store import Store


async def test_initiate_creates_row_and_presigned_put(
    api: Api, user: User, db: AsyncEngine, store: Store, clip: Path
) -> None:
    init = await initiate(api, user, "../../etc/My Holiday.MP4", title="Holiday")
    assert init["method"] == "PUT"
    assert init["expires_at"]
    video = await video_row(db, init["video_id"])
    assert video is not None
    assert video["status"] == "uploading"
    assert video["original_file_name"] == "My Holiday.MP4"
    assert video["title"] == "Holiday"
    key = video["source_key"]
    # The key is ours (raw/{id}/{uuid}.mp4): the user's file name never becomes a path.
    prefix, ext = f"raw/{init['video_id']}/", ".mp4"
    assert key.startswith(prefix) and key.endswith(ext)
    uuid.UUID(key[len(prefix) : -len(ext)])
    assert "X-Amz-Signature" in init["upload_url"]

    await upload(clip, init["upload_url"])
    head = await store.head(key)
    assert head["ContentLength"] == file_size(clip)


@pytest.mark.parametrize(
    ("body", "code", "status", "mentions"),
    [
        ({"file_name": "notes.txt"}, "unsupported_file_type", 400, "file_name"),
        ({"file_name": "noextension"}, "unsupported_file_type", 400, "file_name"),
        (
            {"file_name": "a.mp4", "content_type": "text/html"},
            "unsupported_file_type",
            400,
            "content_type",
        ),
        ({"file_name": "a.mp4", "size": 50 * 1024**3 + 1}, "file_too_large", 413, "size"),
        ({"file_name": "a.mp4", "size": 0}, "validation_error", 400, "size"),
        ({"file_name": ""}, "validation_error", 400, "file_name"),
        ({"title": "x"}, "validation_error", 400, "file_name"),
        ({"file_name": "a.mp4", "title": "t" * 256}, "validation_error", 400, "title"),
        ({"file_name": ["a.mp4"]}, "validation_error", 400, "file_name"),
    ],
)
async def test_initiate_validation(
    api: Api, user: User, body: dict[str, Any], code: str, status: int, mentions: str
) -> None:
    resp = await api.client.post("/api/v1/videos/upload/initiate", json=body, headers=user.headers)
    assert resp.status == status
    error = (await resp.json())["error"]
    assert error["code"] == code
    assert mentions in error["message"]


async def test_complete_queues_both_jobs_once(
    api: Api, user: User, db: AsyncEngine, clip: Path, job_tap: JobTap
) -> None:
    init = await initiate(api, user, clip.name, content_type="video/mp4")
    await upload(clip, init["upload_url"])
    video_id = init["video_id"]

    status, body = await complete(api, user, video_id)
    assert status == 202
    assert body == {"video_id": video_id, "status": "transcoding"}
    video = await video_row(db, video_id)
    assert video is not None
    assert video["status"] == "transcoding"
    assert video["size"] == file_size(clip)
    assert video["etag"]

    jobs = await eventually(lambda: job_tap.for_video(video_id), lambda j: len(j) == 2)
    by_key = {job.routing_key: job for job in jobs}
    assert set(by_key) == {"cover", "transcode"}
    for kind, job in by_key.items():
        assert job.body["kind"] == kind
        assert job.body["source_key"] == video["source_key"]
        assert job.body["source_etag"] == video["etag"]
        assert job.message_id == job.body["job_id"]
        assert job.persistent
        assert job.content_type == "application/json"
        assert job.headers["x-attempt"] == 1
    # The relay marks a row sent after the broker's confirm, which may land just after the
    # consumer above already saw the message.
    outbox = await eventually(
        lambda: rows(db, "SELECT * FROM outbox WHERE video_id = :id", id=video_id),
        lambda found: len(found) == 2 and all(r["sent_at"] is not None for r in found),
    )
    assert len(outbox) == 2

    # A second complete is a conflict naming the status, and queues nothing.
    status, body = await complete(api, user, video_id)
    assert status == 409
    assert body["error"]["code"] == "invalid_status"
    assert "transcoding" in body["error"]["message"]
    assert len(await rows(db, "SELECT id FROM outbox WHERE video_id = :id", id=video_id)) == 2
    assert await job_tap.for_video(video_id) == jobs


async def test_complete_before_upload(api: Api, user: User, db: AsyncEngine) -> None:
    init = await initiate(api, user)
    status, body = await complete(api, user, init["video_id"])
    assert status == 409
    assert body["error"]["code"] == "upload_not_found"
    assert "upload not found" in body["error"]["message"]
    video = await video_row(db, init["video_id"])
    assert video is not None and video["status"] == "uploading"
    assert await rows(db, "SELECT id FROM outbox WHERE video_id = :id", id=init["video_id"]) == []


async def test_complete_validation(api: Api, user: User) -> None:
    for body in ({}, {"video_id": "abc"}, {"video_id": 0}):
        resp = await api.client.post(
            "/api/v1/videos/upload/complete", json=body, headers=user.headers
        )
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "validation_error"
    status, body = await complete(api, user, 10**12)
    assert status == 404


async def test_oversized_upload_is_deleted_and_failed(
    api: Api, user: User, db: AsyncEngine, store: Store, clip: Path
) -> None:
    small = await start_api(
        with_overrides(api.settings, upload={"max_size": 1000}),
        run_relay=False,
        run_consumers=False,
    )
    try:
        init = await initiate(small, user, clip.name)
        await upload(clip, init["upload_url"])
        status, body = await complete(small, user, init["video_id"])
    finally:
        await small.client.close()
    assert status == 413
    assert body["error"]["code"] == "file_too_large"
    video = await video_row(db, init["video_id"])
    assert video is not None
    assert video["status"] == "failed"
    assert "over the maximum of 1000 bytes" in video["error"]
    assert await store.keys(f"raw/{init['video_id']}/") == []
    assert await rows(db, "SELECT id FROM outbox WHERE video_id = :id", id=init["video_id"]) == []


async def test_other_users_video_is_not_found(
    api: Api, user: User, other_user: User, db: AsyncEngine, clip: Path
) -> None:
    init = await initiate(api, user, clip.name)
    await upload(clip, init["upload_url"])
    video_id = init["video_id"]
    path = f"/api/v1/videos/{video_id}"
    for headers in (other_user.headers, {}):
        resp = await api.client.get(path, headers=headers)
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    status, _ = await complete(api, other_user, video_id)
    assert status == 404
    resp = await api.client.delete(path, headers=other_user.headers)
    assert resp.status == 404
    listed = await api.client.get("/api/v1/videos", headers=other_user.headers)
    assert video_id not in [v["id"] for v in (await listed.json())["items"]]
    # Nothing happened to it.
    video = await video_row(db, video_id)
    assert video is not None and video["status"] == "uploading"
    resp = await api.client.get(path, headers=user.headers)
    assert resp.status == 200


async def test_list_newest_first_and_bounded(api: Api, db: AsyncEngine, clip: Path) -> None:
    owner = await api.register()
    ids = [(await initiate(api, owner, f"v{i}.mkv"))["video_id"] for i in range(3)]
    resp = await api.client.get("/api/v1/videos?limit=2", headers=owner.headers)
    assert resp.status == 200
    page = await resp.json()
    assert [v["id"] for v in page["items"]] == ids[::-1][:2]
    assert page["total"] == 3 and page["limit"] == 2 and page["offset"] == 0
    resp = await api.client.get("/api/v1/videos?limit=2&offset=2", headers=owner.headers)
    assert [v["id"] for v in (await resp.json())["items"]] == ids[:1]
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc"):
        resp = await api.client.get(f"/api/v1/videos?{query}", headers=owner.headers)
        assert resp.status == 400, query
        assert (await resp.json())["error"]["code"] == "validation_error"


async def test_uploaded_video_helper(api: Api, user: User, clip: Path) -> None:
    video_id = await uploaded_video(api, user, clip)
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=user.headers)
    body = await resp.json()
    assert body["status"] == "transcoding"
    assert body["sources"] == [] and body["playback_url"] is None


async def test_racing_completes_queue_one_set_of_jobs(
    api: Api, user: User, db: AsyncEngine, clip: Path
) -> None:
    init = await initiate(api, user, clip.name)
    await upload(clip, init["upload_url"])
    results = await asyncio.gather(*(complete(api, user, init["video_id"]) for _ in range(6)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [202, 409, 409, 409, 409, 409]
    outbox = await rows(
        db, "SELECT routing_key FROM outbox WHERE video_id = :id", id=init["video_id"]
    )
    assert sorted(r["routing_key"] for r in outbox) == ["cover", "transcode"]
