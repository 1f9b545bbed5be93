"""The OpenAPI document and docs page, health, readiness, metrics, start-up and shutdown."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import aiohttp
from openapi_spec_validator import validate
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.net import free_port, wait_for_port
from harness.processes import REPO_ROOT
from tests.api.helpers import rows
from tests.api.support import Api, User

# A Python process importing the whole app can take a while to start on a busy machine.
START_WITHIN = 120.0


async def test_openapi_document_is_valid_and_complete(api: Api) -> None:
    resp = await api.client.get("/api/v1/openapi.json")
    assert resp.status == 200
    document = await resp.json()
    validate(document)
    assert document["openapi"].startswith("3.")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = set()
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        # HEAD and the CORS preflights (OPTIONS) come with the routes; the web page is no API.
        if route.method in ("HEAD", "OPTIONS") or path is None or path.startswith("/api/v1/docs"):
            continue
        if path == "/" or path.startswith("/app/"):
            continue
        if path == "/api/v1/openapi.json":
            continue
        path = path.replace("{video_id:\\d+}", "{video_id}").replace(
            "{quality:[A-Za-z0-9_-]{1,16}}", "{quality}"
        )
        served.add((route.method, path))
    assert served == documented
    schemas = document["components"]["schemas"]
    assert {"RegisterRequest", "InitiateUploadRequest", "VideoResponse", "ErrorResponse"} <= set(
        schemas
    )
    initiate = document["paths"]["/api/v1/videos/upload/initiate"]["post"]
    assert initiate["security"] == [{"bearerAuth": []}]
    assert initiate["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert document["components"]["securitySchemes"]["bearerAuth"]["bearerFormat"] == "JWT"


async def test_statuses_implied_by_a_declaration_are_documented_and_true(
    api: Api, user: User
) -> None:
    # @operation adds 400 and 413 for a JSON body and 401 for any token; each claim is
    # checked in the document, and the 413 against the server on every body route it can
    # reach without path parameters (the others look their object up first).
    document = await (await api.client.get("/api/v1/openapi.json")).json()
    too_big = b'{"x": "' + b"a" * (api.settings.server.max_body_bytes + 10) + b'"}'
    body_routes = 0
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            documented = set(op["responses"])
            token_in_query = any(p["name"] == "token" for p in op.get("parameters", []))
            if "security" in op or token_in_query:
                assert "401" in documented, (method, path)
            if "requestBody" not in op:
                continue
            assert {"400", "413"} <= documented, (method, path)
            if "{" not in path:
                body_routes += 1
                resp = await api.client.request(
                    method,
                    path,
                    data=too_big,
                    headers={**user.headers, "Content-Type": "application/json"},
                )
                assert resp.status == 413, (method, path)
    assert body_routes >= 5


async def test_docs_page_serves_swagger_ui(api: Api) -> None:
    resp = await api.client.get("/api/v1/docs")
    assert resp.status == 200
    html = await resp.text()
    assert "SwaggerUIBundle" in html and "/api/v1/openapi.json" in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        resp = await api.client.get(f"/api/v1/docs/static/{asset}")
        assert resp.status == 200, asset
        assert len(await resp.read()) > 1000


async def test_health_ready_metrics(api: Api) -> None:
    resp = await api.client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    assert await resp.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
    }
    await api.client.get("/api/v1/nope")
    resp = await api.client.get("/metrics")
    text = await resp.text()
    assert 'http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert 'http_requests_total{method="GET",route="unmatched",status="404"}' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",route="/readyz"}' in text
    assert "outbox_pending" in text
    assert "# TYPE events_applied_total counter" in text


def _start_api_failing(env: dict[str, str]) -> list[str]:
    """Start the API process with ``env``; it must exit 2. Returns its stderr lines."""
    proc = subprocess.run(
        [sys.executable, "-m", "api_service.main"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=START_WITHIN,
    )
    assert proc.returncode == 2
    return proc.stderr.strip().splitlines()


async def _python_module(module: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """``python -m module`` from the repository root, its stderr piped for the test to read."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        env=env,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


def test_refuses_default_secret_outside_development(settings_env: dict[str, str]) -> None:
    lines = _start_api_failing({**settings_env, "VIDEO_SERVER__ENVIRONMENT": "production"})
    assert len(lines) == 1 and "auth.jwt_secret" in lines[0]

    lines = _start_api_failing({**settings_env, "VIDEO_SERVER__PORT": "not-a-port"})
    assert lines[0].startswith("invalid setting server.port")


async def test_process_serves_and_shuts_down_gracefully(
    api: Api, settings_env: dict[str, str], http: aiohttp.ClientSession
) -> None:
    port = free_port()
    env = {
        **settings_env,
        "VIDEO_SERVER__PORT": str(port),
        "VIDEO_LOGGING__JSON_OUTPUT": "true",
        "PYTHONUNBUFFERED": "1",
    }
    proc = await _python_module("api_service.main", env)
    try:
        await wait_for_port(port, within=START_WITHIN)
        async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 200
            request_id = resp.headers["X-Request-ID"]
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), START_WITHIN)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    access = [line for line in stderr.decode().splitlines() if '"request"' in line]
    assert any(request_id in line and "/healthz" in line for line in access)
    assert "Traceback" not in stderr.decode()


async def test_migrate_command_creates_and_upgrades(
    settings_env: dict[str, str], db: AsyncEngine
) -> None:
    url = make_url(settings_env["VIDEO_DATABASE__URL"])
    name = f"{url.database}_migrate"
    env = {
        **settings_env,
        "VIDEO_DATABASE__URL": url.set(database=name).render_as_string(hide_password=False),
    }
    try:
        proc = await _python_module("api_service.migrate", env)
        _, stderr = await asyncio.wait_for(proc.communicate(), START_WITHIN)
        assert proc.returncode == 0, stderr.decode()[-2000:]
        tables = await rows(
            db,
            "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = :s",
            s=name,
        )
        assert {r["t"] for r in tables} >= {"users", "videos", "video_sources", "outbox"}
    finally:
        async with db.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
