"""The HTTP flow of a client: sign up, initiate, ``curl -T`` to the presigned URL, complete,
then poll the video until its cover and its HLS are ready."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.console import BenchError, say

COVER_POLL = 0.02
ONLINE_POLL = 0.05
REPORT_EVERY = 10.0


@dataclass
class Watch:
    """Seconds after complete was sent until the cover and until online."""

    video_id: int
    cover: float | None = None
    online: float | None = None


class Client:
    def __init__(self, session: aiohttp.ClientSession, api: str) -> None:
        self.session = session
        self.api = api
        self.headers: dict[str, str] = {}

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        try:
            async with self.session.request(
                method, self.api + path, headers=self.headers, **kwargs
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, ValueError) as exc:
            raise BenchError(f"{method} {path} failed: {exc!r}") from None
        if status != expect:
            raise BenchError(f"{method} {path}: HTTP {status} (expected {expect}): {body}")
        return body

    async def sign_up(self) -> None:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        user = {"email": email, "password": "bench-password-123"}
        await self.call("POST", "/api/v1/users/register", 201, json={"nickname": "bench", **user})
        login = await self.call("POST", "/api/v1/users/login", 200, json=user)
        self.headers = {"Authorization": f"Bearer {login['token']}"}

    async def upload(self, path: Path) -> int:
        """Initiate and PUT the file with curl, as a client of the platform does; returns the
        video id (not completed yet)."""
        initiated = await self.call(
            "POST", "/api/v1/videos/upload/initiate", 201,
            json={"file_name": path.name, "title": path.stem},
        )  # fmt: skip
        curl = await asyncio.create_subprocess_exec(
            "curl", "--fail", "-sS", "-T", str(path), initiated["upload_url"],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await curl.communicate()
        if curl.returncode != 0:
            raise BenchError(f"curl -T {path.name} failed: {stderr.decode(errors='replace')}")
        return int(initiated["video_id"])

    async def complete(self, video_id: int) -> float:
        """Send complete; returns the monotonic time just before it was sent."""
        sent = time.monotonic()
        await self.call("POST", "/api/v1/videos/upload/complete", 202, json={"video_id": video_id})
        return sent

    async def video(self, video_id: int) -> dict[str, Any]:
        video: dict[str, Any] = await self.call("GET", f"/api/v1/videos/{video_id}", 200)
        return video

    async def watch(
        self, video_id: int, sent: float, *, online: bool = True, within: float = 600.0
    ) -> Watch:
        """Poll every 20 ms until the cover is there, then every 50 ms until online (when
        ``online``); times are relative to ``sent``."""
        result = Watch(video_id)
        next_report = time.monotonic() + REPORT_EVERY
        while True:
            video = await self.video(video_id)
            now = time.monotonic()
            if result.cover is None and video.get("cover_url"):
                result.cover = now - sent
            if video["status"] == "online":
                result.online = now - sent
                return result
            if video["status"] == "failed":
                raise BenchError(f"video {video_id} failed: {video.get('error')}")
            if result.cover is not None and not online:
                return result
            if now - sent > within:
                raise BenchError(
                    f"video {video_id} still {video['status']} after {within:.0f} s "
                    f"(progress {video.get('progress')})"
                )
            if now >= next_report:
                say(
                    f"  video {video_id}: {video['status']}, progress {video.get('progress')}, "
                    f"{now - sent:.0f} s since complete"
                )
                next_report = now + REPORT_EVERY
            await asyncio.sleep(COVER_POLL if result.cover is None else ONLINE_POLL)
