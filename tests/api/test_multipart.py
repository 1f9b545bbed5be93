"""Multipart uploads through the Uppy/Companion routes, against the real SeaweedFS."""

from __future__ import annotations

import os

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.polling import eventually
from tests.api import multipart as mp
from tests.api.helpers import initiate, rows, video_row
from tests.api.support import Api, JobTap, User, start_api, with_overrides
from tests.store import Store

MIB = mp.MIB


async def test_create_sign_resume_complete_queues_jobs(
    api: Api, user: User, db: AsyncEngine, store: Store, http: aiohttp.ClientSession,
    job_tap: JobTap,
) -> None:  # fmt: skip
    upload = await mp.create(api, user, "Holiday.MP4", metadata={"title": "Holiday"})
    video_id = upload["video_id"]
    assert upload["key"].startswith(f"raw/{video_id}/") and upload["key"].endswith(".mp4")
    assert upload["part_size"] >= 5 * MIB
    video = await video_row(db, video_id)
    assert video is not None
    assert (video["status"], video["title"], video["upload_id"]) == (
        "uploading", "Holiday", upload["uploadId"],
    )  # fmt: skip

    data = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(1234)]
    first = await mp.upload_part(api, user, http, upload, 1, data[0])
    # A client that crashed here resumes from the list of parts the store holds.
    status, listed = await mp.list_parts(api, user, upload)
    assert status == 200
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed] == [(1, 5 * MIB, first)]
    etags = [first] + [
        await mp.upload_part(api, user, http, upload, n, data[n - 1]) for n in (2, 3)
    ]

    status, body = await mp.complete(
        api, user, upload, [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]
    )
    assert status == 200, body
    assert body["video_id"] == video_id and body["status"] == "transcoding"
    assert body["location"].endswith(f"/api/v1/videos/{video_id}")
    head = await store.head(upload["key"])
    assert head["ContentLength"] == sum(len(d) for d in data)
    video = await video_row(db, video_id)
    assert video is not None
    assert (video["status"], video["size"], video["upload_id"]) == (
        "transcoding", sum(len(d) for d in data), None,
    )  # fmt: skip
    jobs = await eventually(lambda: job_tap.for_video(video_id), lambda j: len(j) == 2, 5)
    assert {j.routing_key for j in jobs} == {"cover", "transcode"}
    # The upload is finished: its routes answer 404, the seed's complete a 409.
    status, _ = await mp.list_parts(api, user, upload)
    assert status == 404
    resp = await api.client.post(
        "/api/v1/videos/upload/complete", json={"video_id": video_id}, headers=user.headers
    )
    assert resp.status == 409


async def test_initiate_picks_multipart_above_threshold_or_on_request(
    api: Api, user: User, db: AsyncEngine
) -> None:
    big = await initiate(api, user, "big.mkv", size=6 * 1024**3)
    assert big["upload"] == "multipart" and big["upload_url"] is None
    assert big["multipart"]["key"].startswith(f"raw/{big['video_id']}/")
    asked = await initiate(api, user, "small.mp4", multipart=True)
    assert asked["upload"] == "multipart"
    # 60 GB in 10 000 parts needs parts above the default 16 MiB.
    huge = await initiate(api, user, "huge.mp4", size=50 * 1024**3)
    assert huge["multipart"]["part_size"] * 10_000 >= 50 * 1024**3
    small = await initiate(api, user, "small.mp4", size=1000)
    assert small["upload"] == "single" and "X-Amz-Signature" in small["upload_url"]
    assert small["upload_post"]["fields"]["policy"]
    resp = await api.client.post(
        "/api/v1/videos/upload/initiate",
        json={"file_name": "a.mp4", "size": 6 * 1024**3, "multipart": False},
        headers=user.headers,
    )
    assert resp.status == 413
    assert "multipart" in (await resp.json())["error"]["message"]


async def test_keys_and_upload_ids_must_match_the_callers_video(
    api: Api, user: User, other_user: User
) -> None:
    upload = await mp.create(api, user)
    other = await mp.create(api, other_user)
    forged = [
        (other_user, upload),  # someone else's upload
        (user, {**upload, "key": other["key"]}),  # a key of another video
        (user, {**upload, "uploadId": other["uploadId"]}),  # an upload id of another video
        (user, {**upload, "key": upload["key"].replace(".mp4", ".mkv")}),
        (user, {**upload, "key": "processed/1/cover.jpg"}),
        (user, {**upload, "key": "../" + upload["key"]}),
    ]
    for caller, target in forged:
        status, body = await mp.list_parts(api, caller, target)
        assert status == 404, (target, body)
        resp = await api.client.get(
            f"{mp.BASE}/{target['uploadId']}/1", params={"key": target["key"]},
            headers=caller.headers,
        )  # fmt: skip
        assert resp.status == 404
        status, _ = await mp.abort(api, caller, target)
        assert status == 404
    resp = await api.client.get(f"{mp.BASE}/{upload['uploadId']}", headers=user.headers)
    assert resp.status == 400  # no key
    resp = await api.client.get(f"{mp.BASE}/{upload['uploadId']}", params={"key": upload["key"]})
    assert resp.status == 401
    for number in ("0", "10001", "x"):
        resp = await api.client.get(
            f"{mp.BASE}/{upload['uploadId']}/{number}", params={"key": upload["key"]},
            headers=user.headers,
        )  # fmt: skip
        assert resp.status == 400, number


async def test_abort_leaves_no_parts_and_kills_part_urls(
    api: Api, user: User, db: AsyncEngine, store: Store, http: aiohttp.ClientSession
) -> None:
    upload = await mp.create(api, user)
    video_id = upload["video_id"]
    await mp.upload_part(api, user, http, upload, 1, os.urandom(5 * MIB))
    later = await mp.sign(api, user, upload, 2)
    assert await store.pending_uploads(f"raw/{video_id}/") == [upload["uploadId"]]

    status, body = await mp.abort(api, user, upload)
    assert (status, body) == (200, {})
    assert await store.pending_uploads(f"raw/{video_id}/") == []
    status, _ = await mp.put_part(http, later, os.urandom(1000))
    assert status == 404  # NoSuchUpload: the URL writes nothing
    assert await store.keys(f"raw/{video_id}/") == []
    video = await video_row(db, video_id)
    assert video is not None
    assert (video["status"], video["error"]) == ("failed", "upload aborted by the client")


async def test_delete_aborts_the_multipart_upload(
    api: Api, user: User, store: Store, http: aiohttp.ClientSession
) -> None:
    upload = await mp.create(api, user)
    await mp.upload_part(api, user, http, upload, 1, os.urandom(5 * MIB))
    later = await mp.sign(api, user, upload, 2)
    resp = await api.client.delete(f"/api/v1/videos/{upload['video_id']}", headers=user.headers)
    assert resp.status == 204
    assert await store.pending_uploads(f"raw/{upload['video_id']}/") == []
    status, _ = await mp.put_part(http, later, os.urandom(1000))
    assert status == 404


async def test_part_rules_and_mismatched_parts(
    api: Api, user: User, store: Store, http: aiohttp.ClientSession
) -> None:
    upload = await mp.create(api, user)
    small = await mp.upload_part(api, user, http, upload, 1, os.urandom(1000))
    last = await mp.upload_part(api, user, http, upload, 2, os.urandom(1000))
    status, body = await mp.complete(
        api, user, upload, [{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": last}]
    )
    assert status == 400 and body["error"]["code"] == "part_too_small"
    big = await mp.upload_part(api, user, http, upload, 1, os.urandom(5 * MIB))
    status, body = await mp.complete(api, user, upload, [{"PartNumber": 1, "ETag": big}])
    assert status == 400 and body["error"]["code"] == "parts_mismatch"
    status, body = await mp.complete(
        api, user, upload, [{"PartNumber": 1, "ETag": '"0123"'}, {"PartNumber": 2, "ETag": last}]
    )
    assert status == 400 and body["error"]["code"] == "parts_mismatch"  # no such ETag
    # A resuming client sees one part per number.
    status, listed = await mp.list_parts(api, user, upload)
    assert status == 200 and [p["PartNumber"] for p in listed] == [1, 2]
    status, body = await mp.complete(api, user, upload, [])
    assert status == 400 and body["error"]["code"] == "validation_error"
    status, body = await mp.complete(
        api, user, upload, [{"PartNumber": 1, "ETag": big}, {"PartNumber": 2, "ETag": last}]
    )
    assert status == 200, body
    # The re-sent part 1 (named by its ETag) is the one in the object.
    head = await store.head(upload["key"])
    assert head["ContentLength"] == 5 * MIB + 1000


async def test_total_over_the_limit_is_413_and_leaves_nothing(
    api: Api, user: User, db: AsyncEngine, store: Store, http: aiohttp.ClientSession
) -> None:
    limited = await start_api(
        with_overrides(api.settings, upload={"max_size": 8 * MIB}),
        run_relay=False,
        run_consumers=False,
    )
    try:
        for declared, parts, limit in ((None, 2, 8 * MIB), (6 * MIB, 2, 6 * MIB)):
            extra: dict[str, int] = {} if declared is None else {"size": declared}
            upload = await mp.create(limited, user, "big.mp4", **extra)
            etags = [
                await mp.upload_part(limited, user, http, upload, n, os.urandom(5 * MIB))
                for n in range(1, parts + 1)
            ]
            status, body = await mp.complete(
                limited, user, upload,
                [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)],
            )  # fmt: skip
            assert status == 413, body
            assert body["error"]["code"] == "file_too_large"
            assert f"over the maximum of {limit} bytes" in body["error"]["message"]
            video_id = upload["video_id"]
            assert await store.pending_uploads(f"raw/{video_id}/") == []
            assert await store.keys(f"raw/{video_id}/") == []
            video = await video_row(db, video_id)
            assert video is not None and video["status"] == "failed"
            assert await rows(db, "SELECT id FROM outbox WHERE video_id = :id", id=video_id) == []
    finally:
        await limited.client.close()


async def test_single_upload_limits_are_enforced_by_the_store(
    api: Api, user: User, store: Store, http: aiohttp.ClientSession
) -> None:
    init = await initiate(api, user, "a.mp4", size=1000)
    key = await video_row_key(store, init["video_id"])
    # The declared size is signed as Content-Length: a bigger body is refused by the store.
    async with http.put(init["upload_url"], data=os.urandom(5000)) as resp:
        assert resp.status == 403
    # The presigned POST carries a content-length-range policy.
    post = init["upload_post"]
    form = aiohttp.FormData()
    for name, value in post["fields"].items():
        form.add_field(name, value)
    form.add_field("file", os.urandom(5000), filename="a.mp4")
    async with http.post(post["url"], data=form) as resp:
        assert resp.status == 400
        assert "EntityTooLarge" in await resp.text()
    assert key is None
    form = aiohttp.FormData()
    for name, value in post["fields"].items():
        form.add_field(name, value)
    form.add_field("file", os.urandom(1000), filename="a.mp4")
    async with http.post(post["url"], data=form) as resp:
        assert resp.status in (200, 204)
    resp = await api.client.post(
        "/api/v1/videos/upload/complete", json={"video_id": init["video_id"]},
        headers=user.headers,
    )  # fmt: skip
    assert resp.status == 202


async def video_row_key(store: Store, video_id: int) -> str | None:
    keys = await store.keys(f"raw/{video_id}/")
    return keys[0] if keys else None
