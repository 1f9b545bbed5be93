"""A resumable multipart upload of one file through the API's Uppy-style routes.

Progress is saved after every part in the user's state directory, keyed by the file's path,
size and mtime; running the same upload again asks the server which parts it already holds
(the source of truth) and sends only the others.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from video_cli.client import ApiClient, ApiFailure
from video_cli.store import UploadState, drop_state, load_state, local_file, save_state

MIB = 1024 * 1024
MIN_PART = 5 * MIB
MAX_PART = 5 * 1024 * MIB
MAX_PARTS = 10_000
# Test hook: exit abruptly (like a killed process, nothing cleaned up) after this many parts.
EXIT_AFTER_PARTS_ENV = "VIDEO_CLI_TEST_EXIT_AFTER_PARTS"


class Progress(Protocol):
    def update(self, n: float | None = 1) -> bool | None: ...
    def close(self) -> None: ...


ProgressFactory = Callable[[int, int, str], Progress]  # total, initial, description


@dataclass
class UploadResult:
    video_id: int
    size: int
    parts: int
    resumed_parts: int
    seconds: float
    status: str


def plan_part_size(size: int, wanted: int) -> int:
    """``wanted`` within S3's bounds, raised (whole MiB) so the file fits in 10 000 parts."""
    needed = math.ceil(math.ceil(size / MAX_PARTS) / MIB) * MIB
    return min(max(wanted, needed, MIN_PART), MAX_PART)


def _read(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as source:
        source.seek(offset)
        return source.read(length)


async def _resume(client: ApiClient, api: str, state_file: Path) -> UploadState | None:
    state = load_state(state_file)
    if state is None or state.api != api:
        return None
    try:
        listed = await client.parts(state.upload_id, state.key)
    except ApiFailure as exc:
        if exc.status in (404, 409):  # aborted, expired, deleted or completed meanwhile
            drop_state(state_file)
            return None
        raise
    # Only parts of the expected size count as done (a part cut short is sent again).
    state.parts = {
        str(p["PartNumber"]): str(p["ETag"]).strip('"')
        for p in listed
        if p["Size"] == _part_length(state.size, state.part_size, int(p["PartNumber"]))
    }
    return state


def _part_length(size: int, part_size: int, number: int) -> int:
    count = max(1, math.ceil(size / part_size))
    if number > count:
        return -1
    return part_size if number < count else size - part_size * (count - 1)


async def upload_file(
    client: ApiClient,
    path: Path,
    *,
    title: str | None,
    part_size: int | None,
    concurrency: int,
    progress: ProgressFactory,
) -> UploadResult:
    started = time.monotonic()
    local = local_file(path)
    state_file, size = local.state_file, local.size
    state = await _resume(client, client.api, state_file)
    if state is None:
        created = await client.create_upload(path.name, title, size)
        state = UploadState(
            api=client.api,
            path=local.path,
            size=size,
            mtime_ns=local.mtime_ns,
            video_id=int(created["video_id"]),
            upload_id=str(created["uploadId"]),
            key=str(created["key"]),
            part_size=plan_part_size(size, part_size or int(created["part_size"])),
        )
        save_state(state_file, state)
    count = max(1, math.ceil(size / state.part_size))

    def length(number: int) -> int:
        return _part_length(size, state.part_size, number)

    done = {int(n): etag for n, etag in state.parts.items() if etag}
    resumed = len(done)
    bar = progress(size, sum(length(n) for n in done), path.name)
    exit_after = int(os.environ.get(EXIT_AFTER_PARTS_ENV, "0") or 0)
    sent = 0
    lock = asyncio.Semaphore(max(1, concurrency))

    async def send(number: int) -> None:
        nonlocal sent
        async with lock:
            data = await asyncio.to_thread(
                _read, path, (number - 1) * state.part_size, length(number)
            )
            url = await client.sign_part(state.upload_id, state.key, number)
            done[number] = await client.put_part(url, data)
            state.parts = {str(n): etag for n, etag in done.items()}
            save_state(state_file, state)
            bar.update(len(data))
            sent += 1
            if exit_after and sent >= exit_after:
                os._exit(75)

    try:
        await asyncio.gather(*(send(n) for n in range(1, count + 1) if n not in done))
    finally:
        bar.close()
    completed = await client.complete(state.upload_id, state.key, sorted(done.items()))
    drop_state(state_file)
    return UploadResult(
        video_id=state.video_id,
        size=size,
        parts=count,
        resumed_parts=resumed,
        seconds=time.monotonic() - started,
        status=str(completed.get("status", "transcoding")),
    )
