"""The API under test and its users, shared by the fixtures and the tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aio_pika import DeliveryMode
from aio_pika.abc import AbstractQueue
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from api_service.app import create_app
from shared.settings import Settings
from tests.api.proxy import free_port


@dataclass
class User:
    id: int
    email: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    settings: Settings
    app: web.Application
    base_url: str

    async def register(self, **overrides: Any) -> User:
        email = overrides.pop("email", f"u{uuid.uuid4().hex[:12]}@example.com")
        password = overrides.pop("password", "correct horse battery")
        body = {"nickname": "tester", "email": email, "password": password, **overrides}
        resp = await self.client.post("/api/v1/users/register", json=body)
        assert resp.status == 201, await resp.text()
        user_id = (await resp.json())["id"]
        resp = await self.client.post(
            "/api/v1/users/login", json={"email": email, "password": password}
        )
        assert resp.status == 200, await resp.text()
        return User(user_id, email, password, (await resp.json())["token"])


def with_overrides(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """A copy of ``settings`` with some fields of some sections replaced."""
    update = {
        name: getattr(settings, name).model_copy(update=fields) for name, fields in sections.items()
    }
    return settings.model_copy(update=update)


async def start_api(settings: Settings, **flags: bool) -> Api:
    port = free_port()
    settings = with_overrides(settings, server={"public_base_url": URL(f"http://127.0.0.1:{port}")})
    app = create_app(settings, **flags)
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(app, host="127.0.0.1", port=port)
    )
    await client.start_server()
    return Api(client, settings, app, f"http://127.0.0.1:{port}")


@dataclass
class TappedJob:
    routing_key: str
    body: dict[str, Any]
    message_id: str | None
    headers: dict[str, Any]
    persistent: bool
    content_type: str | None


class JobTap:
    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.seen: list[TappedJob] = []

    async def drain(self) -> list[TappedJob]:
        while True:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                return self.seen
            self.seen.append(
                TappedJob(
                    routing_key=message.routing_key or "",
                    body=json.loads(message.body),
                    message_id=message.message_id,
                    headers=dict(message.headers or {}),
                    persistent=message.delivery_mode == DeliveryMode.PERSISTENT,
                    content_type=message.content_type,
                )
            )

    async def for_video(self, video_id: int) -> list[TappedJob]:
        return [job for job in await self.drain() if job.body["video_id"] == video_id]
