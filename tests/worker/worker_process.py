"""The worker as a real subprocess (``python -m transcode_service``) whose JSON log lines are
collected as they come, so tests wait for what it logs instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from harness.processes import REPO_ROOT

LogRecord = dict[str, Any]
# Starting a worker process, or seeing what it logs, on a machine busy with other work.
WAIT_WITHIN = 120.0


class WorkerProcess:
    """A worker subprocess whose JSON log lines are collected as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.logs: list[LogRecord] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, env: dict[str, str]) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "transcode_service",
            env=env,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        worker = cls(proc)
        await worker.wait_log(lambda r: r["event"] == "worker started")
        return worker

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            try:
                record = json.loads(raw)
            except ValueError:
                record = {"event": "raw", "line": raw.decode(errors="replace")}
            async with self._changed:
                self.logs.append(record)
                self._changed.notify_all()

    def find(self, predicate: Callable[[LogRecord], bool]) -> list[LogRecord]:
        return [r for r in self.logs if predicate(r)]

    async def wait_log(
        self, predicate: Callable[[LogRecord], bool], within: float = WAIT_WITHIN
    ) -> LogRecord:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: bool(self.find(predicate)) or self._reader.done())
        found = self.find(predicate)
        assert found, f"log not seen; last lines: {self.logs[-5:]}"
        return found[0]

    def child_pids(self) -> list[int]:
        return [int(r["pid"]) for r in self.find(lambda r: r["event"] == "process started")]

    async def wait(self, within: float = WAIT_WITHIN) -> int:
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        await self.wait()


# Starts a worker process; keyword arguments are environment variables (the fixture
# ``spawn_worker``).
WorkerProcessFactory = Callable[..., Awaitable[WorkerProcess]]
