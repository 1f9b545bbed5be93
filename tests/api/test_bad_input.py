"""Hostile input is a clear 4xx with the usual error body, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.support import Api, User

NESTED = ("[" * 100_000 + "]" * 100_000).encode()
NESTED_IN_FIELD = '{"email": "a@example.com", "password": ' + "[" * 50_000 + "]" * 50_000 + "}"


def _error(body: Any) -> dict[str, Any]:
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] and error["message"]
    return error


@pytest.mark.parametrize("body", [NESTED, NESTED_IN_FIELD.encode()], ids=["array", "field"])
@pytest.mark.parametrize("path", ["/api/v1/users/login", "/api/v1/users/register"])
async def test_deeply_nested_json(api: Api, path: str, body: bytes) -> None:
    resp = await api.client.post(path, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert _error(await resp.json())["code"] == "malformed_json"


@pytest.mark.parametrize(
    "nickname",
    ["evil\u202egpj.exe", "nul\x00byte", "bell\x07", "isolate\u2067x", "private\ue000use"],
)
async def test_nickname_with_control_or_direction_characters(api: Api, nickname: str) -> None:
    resp = await api.client.post(
        "/api/v1/users/register",
        json={"nickname": nickname, "email": "odd@example.com", "password": "12345678"},
    )
    assert resp.status == 400
    error = _error(await resp.json())
    assert error["details"][0]["field"] == "nickname"
    assert "U+" in error["message"]


async def test_ordinary_unicode_names_are_fine(api: Api) -> None:
    # Accents, CJK, emoji with a zero-width joiner, Arabic (right-to-left by itself).
    nickname = "Zoë 東京 👩\u200d💻 مرحبا"
    user = await api.register(nickname=nickname)
    resp = await api.client.get("/api/v1/me", headers=user.headers)
    assert (await resp.json())["nickname"] == nickname


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "a\u202eb"}, "title"),
        ({"title": "line\nbreak"}, "title"),
        ({"file_name": "clip\x00.mp4"}, "file_name"),
        ({"size": 10**30}, "size"),
        ({"size": 1e308}, "size"),
    ],
)
async def test_initiate_rejects_odd_fields(
    api: Api, user: User, fields: dict[str, Any], field: str
) -> None:
    resp = await api.client.post(
        "/api/v1/videos/upload/initiate",
        json={"file_name": "clip.mp4", **fields},
        headers=user.headers,
    )
    assert resp.status == 400
    assert _error(await resp.json())["details"][0]["field"] == field


@pytest.mark.parametrize("video_id", [2**63, 10**40, -1, 0])
async def test_complete_with_out_of_range_ids(api: Api, user: User, video_id: int) -> None:
    resp = await api.client.post(
        "/api/v1/videos/upload/complete", json={"video_id": video_id}, headers=user.headers
    )
    assert resp.status == 400
    assert _error(await resp.json())["details"][0]["field"] == "video_id"


async def test_huge_numbers_in_paths_and_queries(api: Api, user: User) -> None:
    for path in (
        f"/api/v1/videos/{10**30}",
        f"/api/v1/videos/{2**63}",
        f"/api/v1/videos/{10**30}/hls/master.m3u8?token=x",
    ):
        resp = await api.client.get(path, headers=user.headers)
        assert resp.status in (401, 404), path
        _error(await resp.json())
    resp = await api.client.get(f"/api/v1/videos?offset={10**30}", headers=user.headers)
    assert resp.status == 400
    resp = await api.client.patch(
        f"/api/v1/videos/{10**30}", json={"title": "x"}, headers=user.headers
    )
    assert resp.status == 404
