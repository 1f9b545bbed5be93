"""public / unlisted / private: who reads a video and who plays it."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from api_service.auth.tokens import issue_playback_token
from tests.api.support import Api, User
from tests.api.videos import Videos


async def _get(api: Api, video_id: int, user: User | None = None) -> tuple[int, Any]:
    headers = user.headers if user else {}
    resp = await api.client.get(f"/api/v1/videos/{video_id}", headers=headers)
    return resp.status, await resp.json()


async def _patch(api: Api, video_id: int, user: User, body: Any) -> tuple[int, Any]:
    resp = await api.client.patch(f"/api/v1/videos/{video_id}", json=body, headers=user.headers)
    return resp.status, await resp.json()


async def _plays(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url) as resp:
        return resp.status


async def _final_event(http: aiohttp.ClientSession, events_url: str) -> Any:
    """The data of the live stream's first ``online`` event."""
    async with http.get(events_url) as resp:
        assert resp.status == 200
        event = ""
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "online":
                return json.loads(line.split(":", 1)[1])
    raise AssertionError("no online event")


async def test_private_video_is_the_owners_only(
    api: Api, user: User, other_user: User, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.online(user, visibility="private")
    assert (await _get(api, video_id))[0] == 404
    assert (await _get(api, video_id, other_user))[0] == 404
    status, video = await _get(api, video_id, user)
    assert status == 200 and video["visibility"] == "private"
    # The owner's playback URLs play: master and variant.
    assert await _plays(http, video["playback_url"]) == 200
    assert await _plays(http, video["sources"][0]["url"]) == 200
    # A valid playback token that was not issued to the owner does not.
    stranger = issue_playback_token(api.settings.auth, video_id, 60).token
    base = f"{api.base_url}/api/v1/videos/{video_id}/hls"
    assert await _plays(http, f"{base}/master.m3u8?token={stranger}") == 404
    assert await _plays(http, f"{base}/240p.m3u8?token={stranger}") == 404
    # The owner's live-progress stream ends with playback URLs that play too.
    final = await _final_event(http, video["events_url"])
    assert await _plays(http, final["playback_url"]) == 200


async def test_unlisted_is_readable_by_id(
    api: Api, user: User, other_user: User, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.online(user, visibility="unlisted")
    status, video = await _get(api, video_id)
    assert status == 200 and video["visibility"] == "unlisted"
    assert await _plays(http, video["playback_url"]) == 200
    # Lists are the caller's own: never someone else's unlisted video.
    resp = await api.client.get("/api/v1/videos?limit=100", headers=other_user.headers)
    assert video_id not in [v["id"] for v in (await resp.json())["items"]]


async def test_default_is_public_and_owner_changes_it(
    api: Api, user: User, other_user: User, videos: Videos, http: aiohttp.ClientSession
) -> None:
    video_id = await videos.online(user)
    status, public = await _get(api, video_id)
    assert status == 200 and public["visibility"] == "public"
    anonymous_playback = public["playback_url"]
    assert await _plays(http, anonymous_playback) == 200

    # Only the owner may change it; someone else's video is a 404 as everywhere.
    assert (await _patch(api, video_id, other_user, {"visibility": "private"}))[0] == 404
    status, body = await _patch(api, video_id, user, {"visibility": "nobody"})
    assert status == 400 and body["error"]["details"][0]["field"] == "visibility"
    status, body = await _patch(api, video_id, user, {"visibility": "private", "title": "Mine"})
    assert status == 200, body
    assert body["visibility"] == "private" and body["title"] == "Mine"

    # Now private: gone for everyone else, and URLs handed out while public stop playing.
    assert (await _get(api, video_id))[0] == 404
    assert await _plays(http, anonymous_playback) == 404
    assert await _plays(http, public["sources"][0]["url"]) == 404

    status, body = await _patch(api, video_id, user, {"visibility": "public"})
    assert status == 200 and body["visibility"] == "public"
    assert (await _get(api, video_id))[0] == 200
