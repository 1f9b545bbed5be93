"""Schemathesis against the API's own OpenAPI document: every operation gets a bounded
number of generated requests (valid and invalid ones), sent to a real ``video-api`` process
on this run's database, bucket and queues. No answer may be a 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from api_service.app import create_app
from api_service.openapi import build_openapi
from shared.settings import load_settings
from shared.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 25


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"video-api exited with {process.returncode}")
        try:
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {within} s")


def _launch(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("video-api"))],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api_process(
    database: str,
    bucket: str,
    declared_topology: Topology,
    settings_env: dict[str, str],
    tmp_root: Path,
) -> AsyncIterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **settings_env,
        "VIDEO_SERVER__PORT": str(port),
        "VIDEO_SERVER__PUBLIC_BASE_URL": url,
        "VIDEO_LOGGING__JSON_OUTPUT": "true",
    }
    log = tmp_root / "schemathesis-api.log"
    process = await asyncio.to_thread(_launch, {**os.environ, **env}, log)
    try:
        await asyncio.to_thread(_wait_until_serving, url, process)
        yield url
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
    # A 500 leaves its trace in the log: show it with the failure.
    text = log.read_text()
    assert "unhandled error" not in text, text[-4000:]


def _bearer(url: str) -> dict[str, str]:
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    body = {"nickname": "fuzz", "email": email, "password": "fuzzing-password"}
    assert requests.post(f"{url}/api/v1/users/register", json=body, timeout=30).status_code == 201
    login = requests.post(f"{url}/api/v1/users/login", json=body, timeout=30)
    return {"Authorization": f"Bearer {login.json()['token']}"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def auth_headers(api_process: str) -> dict[str, str]:
    return await asyncio.to_thread(_bearer, api_process)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api_schema(api_process: str) -> Any:
    return await asyncio.to_thread(
        schemathesis.openapi.from_url, f"{api_process}/api/v1/openapi.json"
    )


def _operation_labels() -> list[str]:
    # The same document the process serves, built from an app that is never started; only
    # used to name one test per operation.
    app = create_app(load_settings())
    document = build_openapi(app.router, "http://127.0.0.1")
    return [f"{method.upper()} {path}" for path, ops in document["paths"].items() for method in ops]


def _with_video_extension(case: Any) -> Any:
    # The accepted extensions and content types are settings, not in the schema: without
    # this, nearly every generated upload is refused before the code behind it runs.
    if isinstance(case.body, dict) and isinstance(case.body.get("file_name"), str):
        case.body["file_name"] += ".mp4"
        case.body.pop("content_type", None)
    return case


def _strategy(operation: Any) -> st.SearchStrategy[Any]:
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    strategies = [positive, positive.map(_with_video_extension)]
    # An operation with nothing to get wrong (no parameters, no body) has no negative cases.
    with contextlib.suppress(Exception):
        strategies.append(operation.as_strategy(GenerationMode.NEGATIVE))
    return st.one_of(strategies)


@pytest.mark.parametrize("label", _operation_labels())
def test_no_server_errors(label: str, api_schema: Any, auth_headers: dict[str, str]) -> None:
    method, path = label.split(" ", 1)
    operation = api_schema[path][method]

    @given(case=_strategy(operation))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,  # the same examples on every run
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=auth_headers, checks=[not_a_server_error], timeout=60)

    run()
