"""CORS as browsers need it: preflights answered for the JSON API and the playlists, headers
on every response (errors too), the configured origins only; and the bucket's CORS rules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio

from shared.bucket_cors import apply_bucket_cors
from shared.s3 import s3_client
from tests.api.support import Api, User, start_api, with_overrides

ALLOWED = "http://allowed.example"
OTHER = "http://elsewhere.example"
PLAYLIST = "/api/v1/videos/1/hls/master.m3u8"


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def strict_api(api: Api) -> AsyncIterator[Api]:
    settings = with_overrides(api.settings, server={"cors_origins": [ALLOWED]})
    instance = await start_api(settings, run_relay=False, run_consumers=False)
    yield instance
    await instance.client.close()


async def _preflight(
    api: Api, path: str, origin: str, method: str, headers: str = ""
) -> aiohttp.ClientResponse:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    resp = await api.client.options(path, headers=request_headers)
    await resp.read()
    return resp


async def test_preflights_of_playlists_and_api_are_answered_for_any_origin_by_default(
    api: Api,
) -> None:
    for path in (PLAYLIST, "/api/v1/videos/1/hls/360p.m3u8", "/api/v1/videos/1/events"):
        resp = await _preflight(api, path, OTHER, "GET")
        assert resp.status == 200, path
        # Any origin is allowed; aiohttp-cors names the caller's, and says it varies.
        assert resp.headers["Access-Control-Allow-Origin"] == OTHER
        assert "GET" in resp.headers["Access-Control-Allow-Methods"]
    resp = await _preflight(
        api, "/api/v1/videos/upload/initiate", OTHER, "POST", "authorization, content-type"
    )
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == OTHER
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    # No cookies ride along, so credentials are never allowed.
    assert "Access-Control-Allow-Credentials" not in resp.headers


async def test_responses_carry_cors_headers_errors_included(api: Api, user: User) -> None:
    resp = await api.client.get("/api/v1/videos", headers={**user.headers, "Origin": OTHER})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == OTHER
    assert "Origin" in resp.headers["Vary"]
    assert "X-Request-ID" in resp.headers["Access-Control-Expose-Headers"]
    # A page must be able to read why a call failed.
    resp = await api.client.get(PLAYLIST, headers={"Origin": OTHER})
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == OTHER
    assert (await resp.json())["error"]["code"] == "unauthorized"


async def test_only_the_configured_origins_are_allowed(strict_api: Api) -> None:
    resp = await _preflight(strict_api, PLAYLIST, ALLOWED, "GET")
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
    resp = await _preflight(strict_api, PLAYLIST, OTHER, "GET")
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await strict_api.client.get("/healthz", headers={"Origin": OTHER})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_bucket_cors_rules_admit_the_configured_origins_only(api: Api) -> None:
    """The rules the stack setup applies (MinIO and AWS S3 need them), against the real S3."""
    s3_settings = api.settings.s3.model_copy(
        update={"bucket": f"{api.settings.s3.bucket}-cors-{uuid.uuid4().hex[:6]}"}
    )
    bucket = s3_settings.bucket
    async with s3_client(s3_settings) as s3, aiohttp.ClientSession() as http:
        await s3.create_bucket(Bucket=bucket)
        try:
            await apply_bucket_cors(s3, bucket, [ALLOWED])
            put_url = await s3.generate_presigned_url(
                "put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60
            )
            for origin, expected in ((ALLOWED, 200), (OTHER, 403)):
                async with http.options(
                    put_url,
                    headers={
                        "Origin": origin,
                        "Access-Control-Request-Method": "PUT",
                        "Access-Control-Request-Headers": "content-type",
                    },
                ) as resp:
                    assert resp.status == expected, origin
                    if expected == 200:
                        assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
                        assert "PUT" in resp.headers["Access-Control-Allow-Methods"]
            async with http.put(put_url, data=b"bytes", headers={"Origin": ALLOWED}) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
                assert "ETag" in resp.headers["Access-Control-Expose-Headers"]
            get_url = await s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=60
            )
            async with http.get(get_url, headers={"Origin": ALLOWED}) as resp:
                assert resp.status == 200 and await resp.read() == b"bytes"
                assert resp.headers["Access-Control-Allow-Origin"] == ALLOWED
        finally:
            await s3.delete_object(Bucket=bucket, Key="k")
            await asyncio.shield(s3.delete_bucket(Bucket=bucket))
