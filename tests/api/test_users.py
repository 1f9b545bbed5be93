"""Registration, login and the authentication matrix."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings
from tests.api.helpers import row
from tests.api.support import Api, User


def _email() -> str:
    return f"u{uuid.uuid4().hex[:12]}@example.com"


async def test_register_login_me(api: Api) -> None:
    email = _email()
    resp = await api.client.post(
        "/api/v1/users/register",
        json={"nickname": "ann", "email": email.upper(), "password": "long enough pw"},
    )
    assert resp.status == 201
    created = await resp.json()
    assert created["email"] == email
    assert "password" not in json.dumps(created)

    resp = await api.client.post(
        "/api/v1/users/login", json={"email": email, "password": "long enough pw"}
    )
    assert resp.status == 200
    token = (await resp.json())["token"]
    resp = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200
    assert (await resp.json())["id"] == created["id"]


async def test_password_is_argon2_hashed(db: AsyncEngine, user: User) -> None:
    stored = await row(db, "SELECT password_hash FROM users WHERE id = :id", id=user.id)
    assert stored is not None
    assert stored["password_hash"].startswith("$argon2id$")
    assert user.password not in stored["password_hash"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"nickname": "a", "email": "not-an-email", "password": "12345678"}, "email"),
        ({"nickname": "a", "email": "x@example.com", "password": "1234567"}, "password"),
        ({"nickname": "", "email": "x@example.com", "password": "12345678"}, "nickname"),
        ({"email": "x@example.com", "password": "12345678"}, "nickname"),
    ],
)
async def test_register_validation(api: Api, body: dict[str, str], field: str) -> None:
    resp = await api.client.post("/api/v1/users/register", json=body)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "validation_error"
    assert field in error["message"]
    assert error["details"][0]["field"] == field


async def test_register_duplicate_email_conflicts(api: Api, user: User) -> None:
    resp = await api.client.post(
        "/api/v1/users/register",
        json={"nickname": "dup", "email": user.email, "password": "another password"},
    )
    assert resp.status == 409
    assert (await resp.json())["error"]["code"] == "email_taken"


async def test_login_wrong_password_and_unknown_email(api: Api, user: User) -> None:
    for body in (
        {"email": user.email, "password": "wrong password"},
        {"email": _email(), "password": "whatever123"},
    ):
        resp = await api.client.post("/api/v1/users/login", json=body)
        assert resp.status == 401
        assert (await resp.json())["error"]["message"] == "invalid email or password"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(settings: Settings, user: User) -> dict[str, str]:
    secret = settings.auth.jwt_secret.get_secret_value()
    now = int(time.time())
    claims = {"sub": str(user.id), "iss": settings.auth.issuer, "aud": "video-api"}
    header, payload, signature = user.token.split(".")
    forged_payload = _b64({**json.loads(base64.urlsafe_b64decode(payload + "==")), "sub": "1"})
    return {
        "expired": jwt.encode({**claims, "iat": now - 100, "exp": now - 10}, secret, "HS256"),
        "tampered": f"{header}.{forged_payload}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}."
        f"{_b64({**claims, 'iat': now, 'exp': now + 600})}.",
        "other secret": jwt.encode({**claims, "iat": now, "exp": now + 600}, "x" * 40, "HS256"),
        "wrong issuer": jwt.encode(
            {**claims, "iss": "someone-else", "iat": now, "exp": now + 600}, secret, "HS256"
        ),
        "no exp": jwt.encode({**claims, "iat": now}, secret, "HS256"),
        "garbage": "not-a-jwt",
    }


async def test_auth_matrix_on_protected_routes(api: Api, user: User) -> None:
    cases: dict[str, dict[str, str]] = {"no token": {}, "not bearer": {"Authorization": "Basic x"}}
    for name, token in _bad_tokens(api.settings, user).items():
        cases[name] = {"Authorization": f"Bearer {token}"}
    requests = [
        ("GET", "/api/v1/me", None),
        ("GET", "/api/v1/videos", None),
        ("POST", "/api/v1/videos/upload/initiate", {"file_name": "a.mp4"}),
        ("POST", "/api/v1/videos/upload/complete", {"video_id": 1}),
        ("DELETE", "/api/v1/videos/1", None),
    ]
    for name, headers in cases.items():
        for method, path, body in requests:
            resp = await api.client.request(method, path, json=body, headers=headers)
            assert resp.status == 401, (name, method, path)
            payload = await resp.json()
            assert payload["error"]["code"] == "unauthorized", (name, path)
            assert resp.headers["WWW-Authenticate"] == "Bearer"
    # The valid token still works, so the failures above are about the tokens.
    resp = await api.client.get("/api/v1/me", headers=user.headers)
    assert resp.status == 200
