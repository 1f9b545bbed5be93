"""One JSON error format for everything, 503 with Retry-After for a dead dependency."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from api_service.app import create_app
from tests.api.proxy import TcpProxy
from tests.api.support import Api, User, start_api, with_overrides


def _assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]


async def test_unknown_route_and_wrong_method(api: Api, user: User) -> None:
    resp = await api.client.get("/api/v1/nope")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    _assert_error(await resp.json(), "not_found")

    resp = await api.client.get("/api/v1/videos/not-a-number", headers=user.headers)
    assert resp.status == 404
    _assert_error(await resp.json(), "not_found")

    resp = await api.client.put("/api/v1/users/login", json={})
    assert resp.status == 405
    assert "POST" in resp.headers["Allow"]
    _assert_error(await resp.json(), "method_not_allowed")


async def test_malformed_json(api: Api, user: User) -> None:
    for raw in (b"{not json", b"", b"[1, 2]", b"\xff\xfe"):
        resp = await api.client.post(
            "/api/v1/videos/upload/initiate",
            data=raw,
            headers={**user.headers, "Content-Type": "application/json"},
        )
        assert resp.status == 400, raw
        _assert_error(await resp.json(), "malformed_json")


async def test_oversized_body(api: Api) -> None:
    big = b'{"email": "' + b"a" * (api.settings.server.max_body_bytes + 10) + b'"}'
    resp = await api.client.post(
        "/api/v1/users/login", data=big, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413
    _assert_error(await resp.json(), "payload_too_large")


async def test_request_id_in_header(api: Api) -> None:
    resp = await api.client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await api.client.get("/nope", headers={"X-Request-ID": "bad id\twith spaces"})
    assert resp.status == 404
    generated = resp.headers["X-Request-ID"]
    assert generated != "bad id\twith spaces" and len(generated) == 32


async def test_database_down_is_503(api: Api, user: User) -> None:
    url = make_url(api.settings.database.url.get_secret_value())
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    isolated = await start_api(
        with_overrides(api.settings, database={"url": SecretStr(proxied)}),
        run_relay=False,
        run_consumers=False,
    )
    try:
        resp = await isolated.client.get("/api/v1/me", headers=user.headers)
        assert resp.status == 200
        await proxy.stop()
        for method, path, body in (
            ("GET", "/api/v1/me", None),
            ("POST", "/api/v1/users/login", {"email": user.email, "password": user.password}),
            ("GET", "/api/v1/videos", None),
        ):
            resp = await isolated.client.request(method, path, json=body, headers=user.headers)
            assert resp.status == 503, path
            assert resp.headers["Retry-After"] == "5"
            _assert_error(await resp.json(), "service_unavailable")
        resp = await isolated.client.get("/readyz")
        assert resp.status == 503
        assert (await resp.json())["checks"]["database"] == "unavailable"
        resp = await isolated.client.get("/healthz")
        assert resp.status == 200

        await proxy.start()
        resp = await isolated.client.get("/api/v1/me", headers=user.headers)
        assert resp.status == 200
    finally:
        await isolated.client.close()
        await proxy.stop()


async def test_unexpected_error_is_generic_500(api: Api) -> None:
    app = create_app(api.settings, run_relay=False, run_consumers=False)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals /etc/passwd")

    app.router.add_get("/boom", boom)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.get("/boom")
        assert resp.status == 500
        text = await resp.text()
        _assert_error(await resp.json(), "internal_error")
        assert "secret internals" not in text and "RuntimeError" not in text
    finally:
        await client.close()
