"""The platform's HTTP API as the CLI uses it; errors become ``ApiFailure`` with the
server's message."""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp


class ApiFailure(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ApiClient:
    def __init__(self, api: str, token: str | None = None) -> None:
        self.api = api.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=30))

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(
            method, self.api + path, headers=self.headers, **kwargs
        ) as resp:
            if resp.status == 204:
                return None
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise ApiFailure(resp.status, error.get("message") or f"HTTP {resp.status}")
            return body

    async def login(self, email: str, password: str) -> str:
        body = await self.call(
            "POST", "/api/v1/users/login", json={"email": email, "password": password}
        )
        return str(body["token"])

    # ------------------------------------------------------------- videos

    async def videos(self, limit: int, offset: int) -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "GET", "/api/v1/videos", params={"limit": limit, "offset": offset}
        )
        return body

    async def video(self, video_id: int) -> dict[str, Any]:
        body: dict[str, Any] = await self.call("GET", f"/api/v1/videos/{video_id}")
        return body

    async def delete(self, video_id: int) -> None:
        await self.call("DELETE", f"/api/v1/videos/{video_id}")

    # ------------------------------------------------------------- multipart (Uppy routes)

    def _upload_path(self, upload_id: str, suffix: str = "") -> str:
        return f"/api/v1/s3/multipart/{quote(upload_id, safe='')}{suffix}"

    async def create_upload(self, filename: str, title: str | None, size: int) -> dict[str, Any]:
        metadata = {"title": title} if title else {}
        body: dict[str, Any] = await self.call(
            "POST",
            "/api/v1/s3/multipart",
            json={"filename": filename, "metadata": metadata, "size": size},
        )
        return body

    async def sign_part(self, upload_id: str, key: str, number: int) -> str:
        body = await self.call(
            "GET", self._upload_path(upload_id, f"/{number}"), params={"key": key}
        )
        return str(body["url"])

    async def parts(self, upload_id: str, key: str) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = await self.call(
            "GET", self._upload_path(upload_id), params={"key": key}
        )
        return body

    async def complete(
        self, upload_id: str, key: str, parts: list[tuple[int, str]]
    ) -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "POST",
            self._upload_path(upload_id, "/complete"),
            params={"key": key},
            json={"parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
        )
        return body

    async def abort(self, upload_id: str, key: str) -> None:
        await self.call("DELETE", self._upload_path(upload_id), params={"key": key})

    async def put_part(self, url: str, data: bytes) -> str:
        """PUT one part straight to the store; returns its ETag."""
        async with self.http.put(url, data=data) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise ApiFailure(resp.status, f"storage refused a part: {text[:200]}")
            return resp.headers.get("ETag", "").strip('"')
