"""The API under test and its users, shared by the fixtures and the tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from api_service.app import create_app
from harness.broker import BARRIER_TYPE
from harness.client import Account, ApiClient
from harness.net import free_port
from harness.polling import eventually
from shared.settings import Settings

# A registered, logged-in user of the API under test.
User = Account


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    settings: Settings
    app: web.Application
    base_url: str

    def as_user(self, user: User | None = None) -> ApiClient:
        """The platform's HTTP client on this app, calling as ``user`` (anonymous if None)."""
        client = ApiClient(self.client.session, self.base_url)
        client.account = user
        return client

    async def metric(self, sample: str) -> float:
        """The value of the first line of /metrics that starts with ``sample`` (a name with
        its labels); 0 while the app has not counted it yet."""
        text = await (await self.client.get("/metrics")).text()
        for line in text.splitlines():
            if line.startswith(sample):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def register(self, nickname: str = "tester") -> User:
        # The e-mail is made apart from the nickname: a nickname may hold any Unicode text.
        email = f"u{uuid.uuid4().hex[:12]}@example.com"
        return await self.as_user().sign_up(nickname, email=email)


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
    """A private queue bound like the job queues: sees a copy of every published job."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue) -> None:
        self.channel = channel
        self.queue = queue
        self.seen: list[TappedJob] = []
        self._barriers: set[str] = set()

    async def drain(self) -> list[TappedJob]:
        while True:
            message = await self.queue.get(no_ack=True, fail=False)
            if message is None:
                return self.seen
            if message.type == BARRIER_TYPE:
                self._barriers.add(message.message_id or "")
                continue
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

    async def caught_up(self) -> None:
        """Drain until a barrier sent now comes back: every job confirmed before this call
        was queued ahead of it, so it has been seen."""
        marker = str(uuid.uuid4())
        await self.channel.default_exchange.publish(
            Message(b"", type=BARRIER_TYPE, message_id=marker), routing_key=self.queue.name
        )

        async def barrier_back() -> bool:
            await self.drain()
            return marker in self._barriers

        await eventually(barrier_back)
