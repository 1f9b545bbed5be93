"""The HTTP flow of a client: sign up, initiate, ``curl -T`` to the presigned URL, complete,
then poll the video until its cover and its HLS are ready."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.console import BenchError, say
from harness.client import ApiClient

COVER_POLL = 0.02
ONLINE_POLL = 0.05
REPORT_EVERY = 10.0


@dataclass
class Watch:
    """Seconds after complete was sent until the cover and until online."""

    video_id: int
    cover: float | None = None
    online: float | None = None


class Client(ApiClient):
    """The platform's HTTP client, plus the bench's timing of complete -> cover -> online."""

    async def complete_timed(self, video_id: int) -> float:
        """Send complete; returns the monotonic time just before it was sent."""
        sent = time.monotonic()
        await self.complete(video_id)
        return sent

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
