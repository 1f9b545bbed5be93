"""A user of the platform, speaking HTTP exactly as the original service's clients do:
register, log in, initiate, ``curl -T`` the file to the presigned URL, complete, poll the
video. Works over any ``aiohttp.ClientSession`` (an aiohttp ``TestClient``'s included)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from harness.errors import HarnessError

FINAL_STATUSES = ("online", "failed")


class ApiError(HarnessError):
    """An answer with another status than the one expected (or no JSON answer at all)."""


class UploadError(HarnessError):
    """``curl -T`` to the presigned URL failed."""


@dataclass
class Account:
    id: int
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def curl_put(path: Path, url: str, within: float | None = None) -> None:
    """Exactly what the README tells users to run: ``curl -T file "$upload_url"``."""
    curl = await asyncio.create_subprocess_exec(
        "curl", "--fail-with-body", "--silent", "--show-error", "-T", str(path), url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(curl.communicate(), within)
    except TimeoutError:
        curl.kill()
        await curl.wait()
        raise UploadError(f"curl -T {path.name} did not finish within {within} s") from None
    if curl.returncode != 0:
        said = f"{stderr.decode(errors='replace')} {stdout.decode(errors='replace')}".strip()
        raise UploadError(f"curl -T {path.name} failed: {said}")


class ApiClient:
    """Calls the API at ``base_url``; after ``sign_up`` every call carries the user's token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.account: Account | None = None

    @property
    def headers(self) -> dict[str, str]:
        return self.account.headers if self.account else {}

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Status and JSON body (``None`` when the body is empty)."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            async with self.session.request(
                method, self.base_url + path, headers=headers, **kwargs
            ) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientError as exc:
            raise ApiError(f"{method} {path} failed: {exc!r}") from None
        try:
            body = json.loads(text) if text else None
        except ValueError:
            raise ApiError(f"{method} {path}: HTTP {status}, not JSON: {text[:200]!r}") from None
        return status, body

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        """The JSON body of an answer that must have status ``expect``."""
        status, body = await self.request(method, path, **kwargs)
        if status != expect:
            raise ApiError(f"{method} {path}: HTTP {status} (expected {expect}): {body}")
        return body

    async def sign_up(
        self, nickname: str = "tester", email: str | None = None, password: str | None = None
    ) -> Account:
        """Register a new user and log in as them."""
        email = email or f"{nickname}-{uuid.uuid4().hex[:12]}@example.com"
        password = password or f"{nickname}-password-123"
        created = await self.call(
            "POST", "/api/v1/users/register", 201,
            json={"nickname": nickname, "email": email, "password": password},
        )  # fmt: skip
        login = await self.call(
            "POST", "/api/v1/users/login", 200, json={"email": email, "password": password}
        )
        self.account = Account(int(created["id"]), email, password, login["token"])
        return self.account

    async def initiate(self, file_name: str, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "POST", "/api/v1/videos/upload/initiate", 201, json={"file_name": file_name, **extra}
        )
        return body

    async def upload(self, path: Path, **extra: Any) -> int:
        """Initiate and PUT the file with curl; returns the video id (not completed yet)."""
        initiated = await self.initiate(path.name, **{"title": path.stem, **extra})
        await curl_put(path, initiated["upload_url"])
        return int(initiated["video_id"])

    async def complete(self, video_id: int) -> dict[str, Any]:
        body: dict[str, Any] = await self.call(
            "POST", "/api/v1/videos/upload/complete", 202, json={"video_id": video_id}
        )
        return body

    async def video(self, video_id: int) -> dict[str, Any]:
        body: dict[str, Any] = await self.call("GET", f"/api/v1/videos/{video_id}", 200)
        return body

    async def wait_final(
        self,
        video_id: int,
        within: float = 600.0,
        interval: float = 0.2,
        on_poll: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll the video until it is ``online`` or ``failed``; ``on_poll`` sees every state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            video = await self.video(video_id)
            if on_poll is not None:
                on_poll(video)
            if video["status"] in FINAL_STATUSES:
                return video
            if loop.time() > deadline:
                raise ApiError(
                    f"video {video_id} still {video['status']} after {within:.0f} s "
                    f"(progress {video.get('progress')})"
                )
            await asyncio.sleep(interval)
