"""The whole platform as separate processes: the API (``video-api``) and a worker
(``python -m transcode_service``), on this run's isolated database, bucket and queues."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection

from shared.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_http(url: str, process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {within} s")


def launch(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Platform:
    api: str
    api_process: subprocess.Popen[bytes]
    worker_process: subprocess.Popen[bytes]
    logs: Path


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def platform(
    database: str,
    bucket: str,
    declared_topology: Topology,
    amqp: AbstractRobustConnection,
    settings_env: dict[str, str],
    tmp_root: Path,
) -> AsyncIterator[Platform]:
    """Started for this package only, so its processes never consume the queues that later
    test packages use; whatever it left queued is purged when it stops."""
    api_port, health_port = free_port(), free_port()
    api = f"http://127.0.0.1:{api_port}"
    env = {
        **settings_env,
        "VIDEO_SERVER__PORT": str(api_port),
        "VIDEO_SERVER__PUBLIC_BASE_URL": api,
        "VIDEO_WORKER__HEALTH_PORT": str(health_port),
        # Small rungs keep the suite fast; the default ladder is covered by worker tests.
        "VIDEO_WORKER__RUNGS": "[360, 240]",
        "VIDEO_LOGGING__JSON_OUTPUT": "true",
    }
    logs = tmp_root / "e2e-logs"
    logs.mkdir(exist_ok=True)
    api_process = launch([str(Path(sys.executable).with_name("video-api"))], env, logs / "api.log")
    worker_process = launch([sys.executable, "-m", "transcode_service"], env, logs / "worker.log")
    try:
        await asyncio.to_thread(wait_for_http, api, api_process)
        await asyncio.to_thread(wait_for_http, f"http://127.0.0.1:{health_port}", worker_process)
        yield Platform(api, api_process, worker_process, logs)
    finally:
        await asyncio.to_thread(stop, worker_process)
        await asyncio.to_thread(stop, api_process)
        channel = await amqp.channel()
        for name in declared_topology.all_queues():
            queue = await channel.declare_queue(name, passive=True)
            await queue.purge()
        await channel.close()


class Client:
    """A user of the platform, speaking HTTP like the original service's clients."""

    def __init__(self, session: aiohttp.ClientSession, api: str) -> None:
        self.session = session
        self.api = api
        self.headers: dict[str, str] = {}

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        async with self.session.request(
            method, self.api + path, headers=self.headers, **kwargs
        ) as response:
            body = await response.json(content_type=None)
            assert response.status == expect, f"{method} {path}: {response.status} {body}"
            return body

    async def sign_up(self) -> None:
        email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
        await self.call(
            "POST", "/api/v1/users/register", 201,
            json={"nickname": "e2e", "email": email, "password": "password-123"},
        )  # fmt: skip
        login = await self.call(
            "POST", "/api/v1/users/login", 200,
            json={"email": email, "password": "password-123"},
        )  # fmt: skip
        self.headers = {"Authorization": f"Bearer {login['token']}"}

    async def upload(self, path: Path) -> int:
        initiated = await self.call(
            "POST", "/api/v1/videos/upload/initiate", 201,
            json={"file_name": path.name, "title": path.stem},
        )  # fmt: skip
        # Exactly what a client of the original service runs.
        done = await asyncio.to_thread(
            subprocess.run,
            ["curl", "--fail", "-sS", "-T", str(path), initiated["upload_url"]],
            capture_output=True,
        )
        assert done.returncode == 0, done.stderr
        await self.call(
            "POST", "/api/v1/videos/upload/complete", 202, json={"video_id": initiated["video_id"]}
        )
        return int(initiated["video_id"])

    async def wait_final(self, video_id: int, within: float = 120.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            video: dict[str, Any] = await self.call("GET", f"/api/v1/videos/{video_id}", 200)
            if video["status"] in ("online", "failed"):
                return video
            assert loop.time() < deadline, f"video {video_id} stuck in {video['status']}"
            await asyncio.sleep(0.2)


@pytest_asyncio.fixture(loop_scope="session")
async def client(platform: Platform) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        user = Client(session, platform.api)
        await user.sign_up()
        yield user


def env_without_video_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("VIDEO_")}
