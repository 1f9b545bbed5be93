"""A cache of signed variant playlists, per (video, rendition) and signing window.

Signing a long playlist is the expensive part of playback; its result is valid for the
presigned URLs' lifetime, so it is reused for a short window (a tenth of that lifetime, at
most five minutes: a cached URL always has most of its validity left). Concurrent requests
for the same playlist wait for one signing run instead of starting their own.

In-process on purpose: it holds no state, only a result any replica can recompute. It is
bounded by bytes, least recently used first out.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_WINDOW_SECONDS = 300
DEFAULT_BUDGET_BYTES = 64 * 1024 * 1024

CacheKey = tuple[int, str, str]  # video id, rendition, playlist object key


@dataclass
class _Entry:
    text: str
    expires: float


def window_seconds(url_expiry: int) -> float:
    return max(1.0, min(MAX_WINDOW_SECONDS, url_expiry / 10))


class SignedPlaylistCache:
    def __init__(self, window: float, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._window = window
        self._budget = budget_bytes
        self._size = 0
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._pending: dict[CacheKey, asyncio.Future[str]] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: CacheKey, build: Callable[[], Awaitable[str]]) -> str:
        entry = self._entries.get(key)
        if entry is not None and entry.expires > time.monotonic():
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.text
        task = self._pending.get(key)
        if task is None:
            self.misses += 1
            # A task of its own: a client that disconnects does not cancel the signing
            # the other waiters share.
            task = asyncio.ensure_future(build())
            self._pending[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        else:
            self.hits += 1
        return await asyncio.shield(task)

    def _finished(self, key: CacheKey, task: asyncio.Future[str]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled() and task.exception() is None:
            self._store(key, task.result())

    def _store(self, key: CacheKey, text: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old.text)
        if len(text) > self._budget:
            return
        self._entries[key] = _Entry(text, time.monotonic() + self._window)
        self._size += len(text)
        while self._size > self._budget:
            _, evicted = self._entries.popitem(last=False)
            self._size -= len(evicted.text)
