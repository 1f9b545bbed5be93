"""``video.ready`` reaches a receiver exactly once even when the API is SIGKILLed while the
delivery is in flight.

Delivery is at least once: a sender killed before it hears the answer cannot know whether the
receiver processed the event, so it sends it again after its lease. "Exactly once" is what a
receiver following the Standard Webhooks advice sees when it drops duplicates by
``webhook-id``: every copy of the event carries the same id, the copy after the restart is
acknowledged, and nothing is sent after the acknowledgement.

Its own package: the API here is a real ``video-api`` process that the test kills and restarts,
and no other API (the in-process one of tests/api, the platform of tests/e2e) may share this
run's database meanwhile, since its dispatcher would claim the same deliveries.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from standardwebhooks import Webhook

from harness.broker import publish_event, purge_queues
from harness.client import ApiClient
from harness.net import free_port
from harness.polling import eventually, wait_until
from harness.processes import Service, api_command
from shared.topology import Topology
from tests.api.helpers import issued_job, succeeded
from tests.media import make_video

START_WITHIN = 120.0
# The delivery interrupted by the kill is claimed again once its lease (webhooks.timeout
# + 30 s) has run out; then the restarted API sends it.
REDELIVERY_WITHIN = 150.0
WEBHOOK_TIMEOUT = 5


@dataclass(frozen=True)
class Delivery:
    webhook_id: str
    type: str
    video_id: int
    outcome: str  # "held" (the API was killed meanwhile), "processed", "duplicate"


@dataclass
class Receiver:
    """Verifies every request with the ``standardwebhooks`` package (a forged or stale one
    would be answered 401 and fail the test), processes each ``webhook-id`` once and
    answers 2xx again for duplicates, as the standard recommends. The first ``video.ready``
    is held open so that the test can kill the sender mid-delivery."""

    url: str
    secret: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    holding: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, type_: str, video_id: int) -> list[Delivery]:
        return [d for d in self.deliveries if d.type == type_ and d.video_id == video_id]

    def processed_ids(self) -> set[str]:
        return {d.webhook_id for d in self.deliveries if d.outcome == "processed"}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event: dict[str, Any] = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception as exc:  # the verifier's own error types
            self.rejected.append(f"{type(exc).__name__}: {exc}")
            return web.Response(status=401)
        webhook_id = request.headers["webhook-id"]
        type_, video_id = event["type"], int(event["data"]["video_id"])
        if type_ == "video.ready" and not self.holding.is_set():
            self.holding.set()
            await self.release.wait()  # the sender is dead by then: nobody reads this answer
            self.deliveries.append(Delivery(webhook_id, type_, video_id, "held"))
            return web.Response(status=503)
        outcome = "duplicate" if webhook_id in self.processed_ids() else "processed"
        self.deliveries.append(Delivery(webhook_id, type_, video_id, outcome))
        return web.Response(status=204)


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/hooks")
    app = web.Application()
    app.router.add_post("/hooks", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    state.release.set()
    await runner.cleanup()


@pytest_asyncio.fixture(loop_scope="session")
async def db(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def api_env(
    platform_env: dict[str, str],
    declared_topology: Topology,
    amqp: AbstractRobustConnection,
) -> AsyncIterator[dict[str, str]]:
    """How the ``video-api`` processes of the test run; the jobs they queue (no worker runs
    here) are purged afterwards."""
    port = free_port()
    yield {
        **platform_env,
        "VIDEO_SERVER__PORT": str(port),
        "VIDEO_SERVER__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "VIDEO_SERVER__OUTBOX_POLL_INTERVAL": "0.2",
        "VIDEO_LOGGING__JSON_OUTPUT": "true",
        # The receiver listens on 127.0.0.1.
        "VIDEO_WEBHOOKS__ALLOW_PRIVATE": "true",
        "VIDEO_WEBHOOKS__POLL_INTERVAL": "0.2",
        "VIDEO_WEBHOOKS__BACKOFF_BASE": "0.2",
        "VIDEO_WEBHOOKS__TIMEOUT": str(WEBHOOK_TIMEOUT),
    }
    channel = await amqp.channel()
    await purge_queues(channel, declared_topology.all_queues())
    await channel.close()


async def _deliveries(client: ApiClient, endpoint_id: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await client.call(
        "GET", f"/api/v1/webhooks/{endpoint_id}/deliveries", 200
    )
    return rows


async def _start_api(env: dict[str, str], log: Path) -> Service:
    service = Service("api", api_command(), env, int(env["VIDEO_SERVER__PORT"]), log)
    service.start()
    await service.wait_ready(START_WITHIN)
    return service


async def test_video_ready_is_acknowledged_once_across_a_sigkill_mid_delivery(
    api_env: dict[str, str], receiver: Receiver, db: AsyncEngine, tmp_path: Path,
    amqp: AbstractRobustConnection, declared_topology: Topology,
) -> None:  # fmt: skip
    clip = await asyncio.to_thread(make_video, tmp_path / "clip.mp4", duration=1)
    api = await _start_api(api_env, tmp_path / "api-1.log")
    try:
        async with aiohttp.ClientSession() as session:
            client = ApiClient(session, api_env["VIDEO_SERVER__PUBLIC_BASE_URL"])
            await client.sign_up("hooks")
            endpoint = await client.call(
                "POST", "/api/v1/webhooks", 201, json={"url": receiver.url}
            )
            receiver.secret = endpoint["secret"]
            video_id = await client.upload(clip)
            await client.complete(video_id)
            job_id = await issued_job(db, video_id, "transcode")
            await publish_event(amqp, declared_topology, succeeded(video_id, job_id))

            # The first video.ready is in flight: the receiver holds it. The other deliveries
            # of its batch are recorded meanwhile (acknowledged ones are not sent again), so
            # only video.ready is left pending when the sender is killed.
            await wait_until(receiver.holding.is_set)
            await eventually(
                lambda: _deliveries(client, endpoint["id"]),
                lambda rows: (
                    [(d["event_type"], d["status"]) for d in rows]
                    == [("video.ready", "pending"), ("video.processing", "delivered")]
                ),
            )
            os.kill(api.pid, signal.SIGKILL)
            await api.stop()  # reaps it
            receiver.release.set()
            await wait_until(lambda: bool(receiver.of("video.ready", video_id)))

            api = await _start_api(api_env, tmp_path / "api-2.log")
            await eventually(
                lambda: asyncio.sleep(0, receiver.of("video.ready", video_id)),
                lambda found: any(d.outcome == "processed" for d in found),
                REDELIVERY_WITHIN,
            )
            assert (await client.video(video_id))["status"] == "online"

            # A later event goes through the same dispatcher: once it has arrived, a resend of
            # the acknowledged video.ready would have been claimed and sent before it. The
            # worker event redelivered as well must send nothing new.
            await publish_event(amqp, declared_topology, succeeded(video_id, job_id))
            second = await client.upload(clip)
            await client.complete(second)
            await wait_until(lambda: bool(receiver.of("video.processing", second)))

            deliveries = await _deliveries(client, endpoint["id"])
    finally:
        await api.stop()

    assert receiver.rejected == []  # every request passed the standardwebhooks verifier
    ready = receiver.of("video.ready", video_id)
    # Sent twice (the copy the kill interrupted, then the one after the lease), always with
    # one webhook-id, so the receiver processed it once and was never sent it again.
    assert [d.outcome for d in ready] == ["held", "processed"]
    assert len({d.webhook_id for d in ready}) == 1
    assert [d.outcome for d in receiver.of("video.processing", video_id)] == ["processed"]
    (row,) = [d for d in deliveries if d["event_type"] == "video.ready"]
    assert (row["status"], row["attempts"], row["last_status"], row["message_id"]) == (
        "delivered", 2, 204, ready[0].webhook_id,
    )  # fmt: skip
    assert row["video_id"] == video_id
