"""Helpers of the API tests: the upload flow as a client runs it, events as the worker
publishes them, and polling for eventual outcomes."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.messages import AnyEvent
from shared.messages import event_routing_key as routing_key_of
from shared.topology import Topology
from tests.api.support import Api, User

T = TypeVar("T")


async def initiate(
    api: Api, user: User, file_name: str = "clip.mp4", **extra: Any
) -> dict[str, Any]:
    resp = await api.client.post(
        "/api/v1/videos/upload/initiate",
        json={"file_name": file_name, **extra},
        headers=user.headers,
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def curl_put(path: Path, url: str) -> None:
    """Exactly what the README tells users to run."""
    subprocess.run(
        ["curl", "-sS", "--fail", "-T", str(path), url],
        check=True,
        timeout=60,
        capture_output=True,
    )


async def upload(path: Path, url: str) -> None:
    await asyncio.to_thread(curl_put, path, url)


async def complete(api: Api, user: User, video_id: int) -> tuple[int, dict[str, Any]]:
    resp = await api.client.post(
        "/api/v1/videos/upload/complete", json={"video_id": video_id}, headers=user.headers
    )
    body: dict[str, Any] = await resp.json()
    return resp.status, body


async def uploaded_video(api: Api, user: User, path: Path) -> int:
    """A video in status transcoding: initiated, uploaded with curl and completed."""
    init = await initiate(api, user, path.name)
    await upload(path, init["upload_url"])
    status, body = await complete(api, user, init["video_id"])
    assert status == 202, body
    video_id: int = init["video_id"]
    return video_id


async def publish_event(
    amqp: AbstractRobustConnection, topology: Topology, event: AnyEvent
) -> None:
    channel = await amqp.channel()
    try:
        exchange = await channel.get_exchange(topology.events_exchange)
        await exchange.publish(
            aio_pika.Message(
                event.to_json(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                content_type="application/json",
                message_id=str(event.job_id),
            ),
            routing_key=routing_key_of(event),
        )
    finally:
        await channel.close()


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool],
    within: float = 10.0,
    interval: float = 0.1,
) -> T:
    """Poll ``probe`` until ``accept`` holds; fail with the last value seen."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last value: {value!r}")
        await asyncio.sleep(interval)


async def row(db: AsyncEngine, sql: str, **params: Any) -> dict[str, Any] | None:
    async with db.connect() as conn:
        result = (await conn.execute(text(sql), params)).mappings().first()
    return dict(result) if result is not None else None


async def rows(db: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        result = (await conn.execute(text(sql), params)).mappings().all()
    return [dict(r) for r in result]


async def video_row(db: AsyncEngine, video_id: int) -> dict[str, Any] | None:
    return await row(db, "SELECT * FROM videos WHERE id = :id", id=video_id)


def file_size(path: Path) -> int:
    return path.stat().st_size


async def issued_job(db: AsyncEngine, video_id: int, kind: str) -> uuid.UUID:
    """The id of the ``kind`` job the API issued (and published) for the video: the API
    applies only events of jobs it issued for that video."""

    async def sent() -> dict[str, Any] | None:
        return await row(
            db,
            "SELECT message_id FROM outbox WHERE video_id = :v AND routing_key = :k "
            "AND sent_at IS NOT NULL",
            v=video_id,
            k=kind,
        )

    found = await eventually(sent, lambda r: r is not None)
    assert found is not None
    return uuid.UUID(found["message_id"])
