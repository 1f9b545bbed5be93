"""The multipart flow as Uppy's @uppy/aws-s3 plugin runs it (Companion-style routes)."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.api.support import Api, User

BASE = "/api/v1/s3/multipart"
MIB = 1024 * 1024


async def create(api: Api, user: User, filename: str = "big.mp4", **extra: Any) -> dict[str, Any]:
    resp = await api.client.post(
        BASE, json={"filename": filename, "type": "video/mp4", **extra}, headers=user.headers
    )
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def sign(api: Api, user: User, upload: dict[str, Any], number: int) -> str:
    resp = await api.client.get(
        f"{BASE}/{upload['uploadId']}/{number}",
        params={"key": upload["key"]},
        headers=user.headers,
    )
    assert resp.status == 200, await resp.text()
    url: str = (await resp.json())["url"]
    return url


async def put_part(http: aiohttp.ClientSession, url: str, data: bytes) -> tuple[int, str]:
    async with http.put(url, data=data) as resp:
        await resp.read()
        return resp.status, resp.headers.get("ETag", "")


async def upload_part(
    api: Api, user: User, http: aiohttp.ClientSession, upload: dict[str, Any], n: int, data: bytes
) -> str:
    status, etag = await put_part(http, await sign(api, user, upload, n), data)
    assert status == 200
    return etag


async def list_parts(api: Api, user: User, upload: dict[str, Any]) -> tuple[int, Any]:
    resp = await api.client.get(
        f"{BASE}/{upload['uploadId']}", params={"key": upload["key"]}, headers=user.headers
    )
    return resp.status, await resp.json()


async def complete(
    api: Api, user: User, upload: dict[str, Any], parts: list[dict[str, Any]]
) -> tuple[int, Any]:
    resp = await api.client.post(
        f"{BASE}/{upload['uploadId']}/complete",
        params={"key": upload["key"]},
        json={"parts": parts},
        headers=user.headers,
    )
    return resp.status, await resp.json()


async def abort(api: Api, user: User, upload: dict[str, Any]) -> tuple[int, Any]:
    resp = await api.client.delete(
        f"{BASE}/{upload['uploadId']}", params={"key": upload["key"]}, headers=user.headers
    )
    return resp.status, await resp.json()
