"""Signed webhooks against a real receiver: Standard Webhooks headers verified with the
``standardwebhooks`` package, events sent once per change, retries with backoff, bounded,
attempts visible through the API, private receivers refused by default."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from standardwebhooks import Webhook

from api_service.webhooks.addresses import ReceiverRefused, check_receiver
from harness.net import free_port
from harness.polling import eventually
from tests.api.helpers import succeeded
from tests.api.support import Api, User, start_api, with_overrides
from tests.api.videos import Videos


@dataclass
class Receiver:
    url: str
    received: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    # Status to answer per path, consumed in order; then 200.
    script: dict[str, list[int]] = field(default_factory=dict)

    def at(self, path: str) -> str:
        return self.url + path

    def bodies(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in self.received if p == path]


@pytest_asyncio.fixture(loop_scope="session")
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}")

    async def handle(request: web.Request) -> web.Response:
        state.received.append((request.path, dict(request.headers), await request.read()))
        planned = state.script.get(request.path, [])
        return web.Response(status=planned.pop(0) if planned else 200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


async def _register(api: Api, user: User, url: str) -> dict[str, Any]:
    resp = await api.client.post("/api/v1/webhooks", json={"url": url}, headers=user.headers)
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def _deliveries(api: Api, user: User, endpoint_id: int) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=user.headers)
    assert resp.status == 200
    body: list[dict[str, Any]] = await resp.json()
    return body


def _verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload


async def test_events_are_signed_and_sent_once_per_change(
    api: Api, user: User, receiver: Receiver, videos: Videos
) -> None:
    endpoint = await _register(api, user, receiver.at("/hooks/a"))
    assert endpoint["secret"].startswith("whsec_")
    video_id = await videos.uploaded(user)
    await eventually(lambda: asyncio.sleep(0, receiver.bodies("/hooks/a")), lambda r: len(r) == 1)
    event = succeeded(video_id, await videos.issued_job(video_id, "transcode"), heights=(240,))
    await videos.publish(event)
    await videos.publish(event)  # a redelivered event
    received = await eventually(
        lambda: asyncio.sleep(0, receiver.bodies("/hooks/a")), lambda r: len(r) >= 2
    )
    # Verified with the package's verifier, not ours; the second copy changed nothing.
    payloads = [_verified(endpoint["secret"], h, b) for h, b in received]
    assert [p["type"] for p in payloads] == ["video.processing", "video.ready"]
    assert all(p["data"]["video_id"] == video_id for p in payloads)
    assert payloads[1]["data"]["status"] == "online"
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 43 + "=").verify(received[1][1], received[1][0])
    deliveries = await _deliveries(api, user, endpoint["id"])
    assert [(d["event_type"], d["status"], d["attempts"]) for d in deliveries] == [
        ("video.ready", "delivered", 1), ("video.processing", "delivered", 1),
    ]  # fmt: skip
    assert received[1][0]["webhook-id"] == deliveries[0]["message_id"]
    await asyncio.sleep(0.5)  # nothing more arrives (no duplicate for the redelivered event)
    assert len(receiver.bodies("/hooks/a")) == 2


async def test_retries_with_backoff_then_gives_up(
    api: Api, receiver: Receiver, videos: Videos
) -> None:
    owner = await api.register()
    receiver.script["/hooks/flaky"] = [500, 503]
    receiver.script["/hooks/down"] = [500] * 100
    flaky = await _register(api, owner, receiver.at("/hooks/flaky"))
    down = await _register(api, owner, receiver.at("/hooks/down"))
    video_id = await videos.uploaded(owner)
    # video.processing meets the 500 and the 503, then gets through on the third attempt.
    (processing,) = await eventually(
        lambda: _deliveries(api, owner, flaky["id"]),
        lambda rows: len(rows) == 1 and rows[0]["status"] != "pending",
        30,
    )
    assert (processing["status"], processing["attempts"], processing["last_status"]) == (
        "delivered", 3, 200,
    )  # fmt: skip
    ids = [h["webhook-id"] for h, _ in receiver.bodies("/hooks/flaky")]
    assert ids == [processing["message_id"]] * 3  # the same webhook-id on each attempt

    await videos.fail(video_id, "not a video")
    flaky_rows = await eventually(
        lambda: _deliveries(api, owner, flaky["id"]),
        lambda rows: len(rows) == 2 and rows[0]["status"] == "delivered",
        30,
    )
    assert (flaky_rows[0]["event_type"], flaky_rows[0]["attempts"]) == ("video.failed", 1)
    failed = _verified(flaky["secret"], *receiver.bodies("/hooks/flaky")[-1])
    assert failed["type"] == "video.failed" and "not a video" in failed["data"]["error"]

    max_attempts = api.settings.webhooks.max_attempts
    down_rows = await eventually(
        lambda: _deliveries(api, owner, down["id"]),
        lambda rows: len(rows) == 2 and all(d["status"] == "failed" for d in rows),
        60,
    )
    assert all(d["attempts"] == max_attempts and d["last_status"] == 500 for d in down_rows)
    assert "HTTP 500" in down_rows[0]["last_error"]


async def test_private_receivers_are_refused_by_default(api: Api, user: User) -> None:
    strict = await start_api(
        with_overrides(api.settings, webhooks={"allow_private": False}),
        run_relay=False,
        run_consumers=False,
    )
    try:
        for url in (
            "http://127.0.0.1:9/hook",
            "http://10.1.2.3/hook",
            "http://[::1]/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/hook",
            "ftp://example.com/hook",
            "http://user:pw@example.com/hook",
        ):
            resp = await strict.client.post(
                "/api/v1/webhooks", json={"url": url}, headers=user.headers
            )
            assert resp.status == 400, url
            assert (await resp.json())["error"]["code"] == "receiver_refused"
    finally:
        await strict.client.close()
    await check_receiver("http://93.184.215.14/hook", allow_private=False)  # a public address
    with pytest.raises(ReceiverRefused):
        await check_receiver("http://[::ffff:127.0.0.1]/", allow_private=False)


async def test_endpoints_are_private_to_their_owner(
    api: Api, user: User, other_user: User, receiver: Receiver
) -> None:
    endpoint = await _register(api, user, receiver.at("/hooks/mine"))
    resp = await api.client.get("/api/v1/webhooks", headers=user.headers)
    listed = await resp.json()
    assert endpoint["id"] in [e["id"] for e in listed]
    assert all("secret" not in e for e in listed)
    path = f"/api/v1/webhooks/{endpoint['id']}"
    for method, suffix in (("GET", "/deliveries"), ("DELETE", "")):
        resp = await api.client.request(method, path + suffix, headers=other_user.headers)
        assert resp.status == 404
    resp = await api.client.delete(path, headers=user.headers)
    assert resp.status == 204
