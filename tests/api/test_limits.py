"""Rate limits and quotas, with real small limits, on API instances that share one database
(as replicas do). Each test speaks from its own client address through X-Forwarded-For
(``trusted_proxy_hops: 1``), so counters of other tests never mix in."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp import ClientResponse

from shared.settings import Settings
from tests.api.helpers import complete, file_size, upload
from tests.api.support import Api, User, start_api, with_overrides

# Fixed windows of a day: a test never straddles a window boundary (except at midnight UTC),
# whatever the machine's speed.
DAY = 86_400
SMALL_LIMITS: dict[str, Any] = {
    "auth_ip_attempts": 5,
    "auth_ip_window": DAY,
    "auth_account_attempts": 3,
    "auth_account_window": DAY,
    "initiate_per_user": 3,
    "initiate_window": DAY,
    "uploads_in_flight": 2,
    "transcodes_in_flight": 1,
    "trusted_proxy_hops": 1,
}

Replicas = tuple[Api, Api]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def replicas(
    settings: Settings, database: str, bucket: str, api: Api
) -> AsyncIterator[Replicas]:
    # ``api`` relays the outbox; these two only serve requests, like extra replicas.
    limited = with_overrides(settings, limits=SMALL_LIMITS)
    first = await start_api(limited, run_relay=False, run_consumers=False)
    second = await start_api(limited, run_relay=False, run_consumers=False)
    yield first, second
    await first.client.close()
    await second.client.close()


# Client addresses never given twice in a run: the counters live in the run's database, and a
# random pick among 250 once handed a test the address another test had flooded.
_CLIENTS = itertools.chain(
    ipaddress.ip_network("198.51.100.0/24").hosts(), ipaddress.ip_network("203.0.113.0/24").hosts()
)


def _address() -> str:
    """X-Forwarded-For from a fresh client behind the one trusted proxy: the proxy appended the
    client's address on the right; the entry on the left is what the client claimed (forgeable,
    so it varies and must not matter)."""
    return f"10.{uuid.uuid4().int % 250}.0.1, {next(_CLIENTS)}"


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def _register(api: Api, address: str, **extra: Any) -> User:
    email = f"l{uuid.uuid4().hex[:12]}@example.com"
    password = "correct horse battery"
    body = {"nickname": "limited", "email": email, "password": password, **extra}
    resp = await api.client.post("/api/v1/users/register", json=body, headers=_from(address))
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    resp = await api.client.post(
        "/api/v1/users/login",
        json={"email": email, "password": password},
        headers=_from(_address()),
    )
    assert resp.status == 200, await resp.text()
    return User(user_id, email, password, (await resp.json())["token"])


async def _assert_429(resp: ClientResponse, code: str, within: int) -> dict[str, Any]:
    assert resp.status == 429, await resp.text()
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= within
    body: dict[str, Any] = await resp.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


async def test_login_flood_gets_429_across_replicas(replicas: Replicas) -> None:
    victim = await _register(replicas[0], _address())
    attacker = str(next(_CLIENTS))  # the address the trusted proxy sees

    async def attempt(i: int) -> ClientResponse:
        api = replicas[i % 2]  # half the flood on each replica
        return await api.client.post(
            "/api/v1/users/login",
            json={"email": f"x{i}@example.com", "password": "guess"},
            # A new forged entry each time: only the one the trusted proxy appended counts.
            headers=_from(f"192.0.2.{i}, {attacker}"),
        )

    responses = await asyncio.gather(*(attempt(i) for i in range(12)))
    statuses = sorted(r.status for r in responses)
    # Exactly the per-address limit got through to the password check, on both replicas.
    assert statuses.count(401) == SMALL_LIMITS["auth_ip_attempts"], statuses
    assert statuses.count(429) == 12 - SMALL_LIMITS["auth_ip_attempts"], statuses
    limited = [r for r in responses if r.status == 429]
    body = await _assert_429(limited[0], "rate_limited", SMALL_LIMITS["auth_ip_window"])
    assert body["error"]["details"][0]["limit"] == "auth_ip"
    # Registering from the flooding address is refused too (it is the same argon2 cost).
    resp = await replicas[1].client.post(
        "/api/v1/users/register",
        json={"nickname": "n", "email": "new@example.com", "password": "12345678"},
        headers=_from(attacker),
    )
    await _assert_429(resp, "rate_limited", SMALL_LIMITS["auth_ip_window"])
    # Other addresses are unaffected.
    resp = await replicas[1].client.post(
        "/api/v1/users/login",
        json={"email": victim.email, "password": victim.password},
        headers=_from(_address()),
    )
    assert resp.status == 200


async def test_login_attempts_per_account_from_many_addresses(replicas: Replicas) -> None:
    # Its registration and first login count: both name the account.
    victim = await _register(replicas[0], _address())
    statuses = []
    for i in range(4):
        resp = await replicas[i % 2].client.post(
            "/api/v1/users/login",
            json={"email": victim.email.upper(), "password": "wrong password"},
            headers=_from(_address()),
        )
        statuses.append(resp.status)
        if resp.status == 429:
            body = await _assert_429(resp, "rate_limited", SMALL_LIMITS["auth_account_window"])
            assert body["error"]["details"][0]["limit"] == "auth_account"
    # Register + login + one wrong password reach the password check; the rest are refused,
    # although each came from a fresh address.
    assert statuses == [401, 429, 429, 429]


async def _initiate(api: Api, user: User, **extra: Any) -> ClientResponse:
    return await api.client.post(
        "/api/v1/videos/upload/initiate",
        json={"file_name": "clip.mp4", **extra},
        headers=user.headers,
    )


async def test_initiate_rate_and_uploads_in_flight(replicas: Replicas) -> None:
    user = await _register(replicas[0], _address())
    first = await _initiate(replicas[0], user)
    second = await _initiate(replicas[1], user)
    assert (first.status, second.status) == (201, 201)
    # Two uploads in flight (their URLs still valid): the third waits for one to finish.
    resp = await _initiate(replicas[1], user)
    expiry = replicas[0].settings.s3.upload_url_expiry
    body = await _assert_429(resp, "quota_exceeded", expiry + 1)
    assert body["error"]["details"][0]["quota"] == "uploads_in_flight"
    # Deleting one frees a slot; the per-user initiate rate (3 per window) still counts
    # the refused attempt, so the next one is the rate limit's.
    video_id = (await first.json())["video_id"]
    resp = await replicas[0].client.delete(f"/api/v1/videos/{video_id}", headers=user.headers)
    assert resp.status == 204
    resp = await _initiate(replicas[0], user)
    body = await _assert_429(resp, "rate_limited", SMALL_LIMITS["initiate_window"])
    assert body["error"]["details"][0]["limit"] == "initiate"


async def test_transcodes_in_flight_per_user(replicas: Replicas, clip: Path) -> None:
    user = await _register(replicas[0], _address())
    ids = []
    for _ in range(2):
        init = await (await _initiate(replicas[0], user)).json()
        await upload(clip, init["upload_url"])
        ids.append(init["video_id"])
    status, _ = await complete(replicas[0], user, ids[0])
    assert status == 202  # no worker here: it stays transcoding
    resp = await replicas[1].client.post(
        "/api/v1/videos/upload/complete", json={"video_id": ids[1]}, headers=user.headers
    )
    body = await _assert_429(resp, "quota_exceeded", 60)
    assert body["error"]["details"][0]["quota"] == "transcodes_in_flight"
    # Nothing changed: the video still waits for a slot and can be completed later.
    resp = await replicas[1].client.get(f"/api/v1/videos/{ids[1]}", headers=user.headers)
    assert (await resp.json())["status"] == "uploading"


async def test_bytes_stored_per_user(settings: Settings, api: Api, clip: Path) -> None:
    size = file_size(clip)
    quota = {**SMALL_LIMITS, "bytes_per_user": size + size // 2, "transcodes_in_flight": 5}
    instance = await start_api(
        with_overrides(settings, limits=quota), run_relay=False, run_consumers=False
    )
    try:
        user = await _register(instance, _address())
        resp = await _initiate(instance, user, size=quota["bytes_per_user"] + 1)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "quota_exceeded"

        ids = []
        for _ in range(2):
            init = await (await _initiate(instance, user, size=size)).json()
            await upload(clip, init["upload_url"])
            ids.append(init["video_id"])
        assert (await complete(instance, user, ids[0]))[0] == 202
        # The second file would take the user over the quota: refused, nothing queued.
        status, body = await complete(instance, user, ids[1])
        assert status == 413, body
        assert body["error"]["code"] == "quota_exceeded"
        assert "storage quota" in body["error"]["message"]
    finally:
        await instance.client.close()
