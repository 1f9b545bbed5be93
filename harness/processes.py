"""The platform's processes (``video-api``, ``python -m transcode_service``) started from the
repository root with their output in a log file, waited for until they listen, and stopped
with SIGTERM, then SIGKILL after a grace period."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from harness.errors import HarnessError
from harness.net import accepts_connections
from harness.polling import DEFAULT_WITHIN

REPO_ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE = 30.0


class ServiceError(HarnessError):
    """A process did not start, died, or did not listen in time; says where its log is."""


def api_command() -> list[str]:
    """The ``video-api`` console script of the interpreter running us (the venv's)."""
    return [str(Path(sys.executable).with_name("video-api"))]


def worker_command() -> list[str]:
    """The worker as the Python interpreter itself (no wrapper, so its pid is the worker's)."""
    return [sys.executable, "-m", "transcode_service"]


class Service:
    """One platform process, listening on ``port`` once ready, logging into ``log``."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path
    ) -> None:
        self.name, self.argv, self.env, self.port, self.log = name, argv, env, port, log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServiceError(f"{self.name} is not running")
        return self.process.pid

    def start(self) -> None:
        with self.log.open("wb") as out:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                self.argv, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ServiceError(f"{self.name} is not running (exit code {code}); see {self.log}")

    async def wait_ready(self, within: float = DEFAULT_WITHIN) -> None:
        """Until the process accepts connections on its port (API or health server)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            self.check_alive()
            if await accepts_connections(self.port):
                return
            if loop.time() > deadline:
                raise ServiceError(
                    f"{self.name} did not listen on {self.port} within {within} s; see {self.log}"
                )
            await asyncio.sleep(0.1)

    async def stop(self, grace: float = STOP_GRACE) -> bool:
        """SIGTERM, then SIGKILL after ``grace`` seconds; True when it had to be killed."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return False
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, grace)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
            return True
        return False
