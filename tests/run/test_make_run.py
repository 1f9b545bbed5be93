"""`make run` as a developer uses it: start it, begin a transcode, press Ctrl-C (SIGINT to
the terminal's foreground process group). Everything stops within honcho's kill timeout,
no ffmpeg or service process is left, and the job is back in its queue.

Its own package, so no other test's worker consumes this run's queues meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aio_pika.abc import AbstractRobustConnection

from harness.client import ApiClient
from harness.polling import eventually, wait_until
from shared.settings import Settings
from shared.topology import Topology
from tests.media import make_video
from tests.platform_fixtures import Ports
from tests.worker.processes import pid_alive, pids_with_arg

ROOT = Path(__file__).resolve().parents[2]


class MakeRun:
    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def service_pids(self) -> dict[str, int]:
        """honcho's "api.1 started (pid=N)": the shell it starts execs the service."""
        found = re.findall(r"\b(api|worker)\.1 started \(pid=(\d+)\)", self.output())
        return {name: int(pid) for name, pid in found}


@pytest.fixture
async def make_run(
    platform_env: dict[str, str],
    declared_topology: Topology,
    amqp: AbstractRobustConnection,
    tmp_path: Path,
) -> AsyncIterator[tuple[MakeRun, str]]:
    ports = Ports()
    env = {
        # As from a terminal: not a sub-make of `make test`.
        **{k: v for k, v in platform_env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
        **ports.env(),
        "VIDEO_WORKER__RUNGS": "[240, 160]",
        "VIDEO_WORKER__X264_PRESET": "slow",  # still encoding when Ctrl-C comes
    }
    # The Procfile's own shutdown grace is what is under test.
    env.pop("VIDEO_WORKER__SHUTDOWN_GRACE", None)
    log = tmp_path / "make-run.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            "make", "--no-print-directory", "-C", str(ROOT), "run",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )  # fmt: skip
    run = MakeRun(process, log)
    try:
        yield run, ports.api_url
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        for pid in run.service_pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Jobs handed back by the interrupted run (the cover too, if it was still running)
        # must not surprise a later test's worker.
        channel = await amqp.channel()
        for name in declared_topology.all_queues():
            queue = await channel.declare_queue(name, passive=True)
            await queue.purge()
        await channel.close()


async def wait_until_answering(url: str, run: MakeRun, within: float = 180) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            assert run.process.returncode is None, f"make run exited:\n{run.output()[-3000:]}"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            assert time.monotonic() < deadline, f"{url} not answering:\n{run.output()[-3000:]}"
            await asyncio.sleep(0.2)


async def test_ctrl_c_during_a_transcode_stops_everything_and_requeues_the_job(
    make_run: tuple[MakeRun, str],
    settings: Settings,
    declared_topology: Topology,
    amqp: AbstractRobustConnection,
    tmp_path: Path,
) -> None:
    run, api = make_run
    await wait_until_answering(f"{api}/api/v1/videos", run)
    work_dir = f"{settings.worker.work_dir}/"
    source = make_video(tmp_path / "clip.mp4", width=640, height=360, duration=20)
    async with aiohttp.ClientSession() as session:
        user = ApiClient(session, api)
        await user.sign_up()
        video_id = await user.upload(source)
        await user.complete(video_id)

    def ladder_running() -> list[int]:
        return pids_with_arg(work_dir, "/transcode-", program="ffmpeg")

    await wait_until(lambda: bool(ladder_running()), within=120)
    ffmpeg = ladder_running()
    services = run.service_pids()
    assert set(services) == {"api", "worker"}, run.output()[-3000:]

    os.killpg(run.process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    await asyncio.wait_for(run.process.wait(), 30)
    output = run.output()
    # The worker handed the job back and exited on its own, before honcho's SIGKILL.
    assert "sending SIGKILL" not in output, output[-3000:]
    assert "jobs interrupted by shutdown" in output and "worker stopped" in output
    await wait_until(lambda: not any(pid_alive(pid) for pid in [*ffmpeg, *services.values()]))
    assert not pids_with_arg(work_dir)  # nor bwrap or anything else of a job

    # Back in the transcode queue, ready for the next worker.
    channel = await amqp.channel()
    try:
        queue = await channel.get_queue(declared_topology.transcode_queue)
        message = await eventually(
            lambda: queue.get(no_ack=False, fail=False), lambda m: m is not None
        )
        assert message is not None, "the interrupted job is not back in its queue"
        assert json.loads(message.body)["video_id"] == video_id
        await message.ack()
    finally:
        await channel.close()
