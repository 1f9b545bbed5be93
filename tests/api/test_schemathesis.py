"""Schemathesis against the API's own OpenAPI document: every operation gets a bounded
number of generated requests (valid and invalid ones), sent to a real ``video-api`` process
on this run's database, bucket and queues. No answer may be a 5xx."""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from harness.processes import Service, api_command
from shared.settings import load_settings
from tests.platform_fixtures import Ports, running

EXAMPLES_PER_OPERATION = 25


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api_process(platform_env: dict[str, str], tmp_root: Path) -> AsyncIterator[str]:
    ports = Ports()
    env = {**platform_env, **ports.env(), "VIDEO_LOGGING__JSON_OUTPUT": "true"}
    api = Service("api", api_command(), env, ports.api, tmp_root / "schemathesis-api.log")
    async with running(api):
        yield ports.api_url
    # A 500 leaves an "unhandled error" event in the log: show it with the failure. Events,
    # not text: Hypothesis feeds the code's own string constants into generated paths.
    text = api.log.read_text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert not [e for e in events if e.get("event") == "unhandled error"], text[-4000:]


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
