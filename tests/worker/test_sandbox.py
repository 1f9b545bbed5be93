"""ffmpeg with nothing to steal and nothing to reach, against the real binaries: the
environment it sees, the worker's memory it cannot read, a network connection it cannot
open even when the protocol whitelist is bypassed, and no process left once its run ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.polling import eventually, wait_until
from shared.settings import WorkerSettings
from tests.worker.processes import pid_alive, pids_with_arg
from transcode_service.errors import RetryableError
from transcode_service.ffmpeg import check_result, run_process
from transcode_service.sandbox import (
    ResolvedMode,
    Sandbox,
    SandboxUnavailable,
    resolve_mode,
    sandbox_for,
)

SECRET = f"s3cr3t-{uuid.uuid4().hex}"
MODES: list[ResolvedMode] = ["bwrap", "none"]


@pytest.fixture
def secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a worker's environment holds in production."""
    monkeypatch.setenv("VIDEO_S3__SECRET_KEY", SECRET)
    monkeypatch.setenv("VIDEO_RABBITMQ__URL", f"amqp://worker:{SECRET}@broker/")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


@pytest.fixture
def fresh_resolution() -> Iterator[None]:
    resolve_mode.cache_clear()
    yield
    resolve_mode.cache_clear()


def test_this_machine_runs_ffmpeg_in_bwrap(fresh_resolution: None) -> None:
    # The project's setup (scripts/stack.sh) installs bubblewrap; here it must be in use.
    mode, why = resolve_mode("auto")
    assert mode == "bwrap", why


@pytest.mark.parametrize("mode", MODES)
async def test_ffmpeg_sees_a_minimal_environment(
    mode: ResolvedMode, secrets_in_environment: None, tmp_path: Path
) -> None:
    sandbox = Sandbox(mode=mode, workdir=tmp_path)
    result = await run_process(
        ["env"], time_limit=30, tool="env", capture_stdout=True, sandbox=sandbox
    )
    assert result.returncode == 0, result.stderr_tail
    seen = dict(line.split("=", 1) for line in result.stdout.decode().splitlines())
    assert SECRET not in result.stdout.decode()
    # bwrap adds PWD for the directory it changes into; nothing else is passed on.
    assert set(seen) - {"PWD"} == {"PATH", "LANG", "TMPDIR"}, seen
    assert seen["TMPDIR"] == str(tmp_path)


async def test_bwrap_hides_the_worker_and_other_files(
    secrets_in_environment: None, tmp_path: Path
) -> None:
    sandbox = Sandbox(mode="bwrap", workdir=tmp_path)
    (tmp_path / "source").write_bytes(b"the job's own file")
    for target in (f"/proc/{os.getpid()}/environ", str(Path(__file__)), "/etc/hostname"):
        result = await run_process(
            ["cat", target], time_limit=30, tool="cat", capture_stdout=True, sandbox=sandbox
        )
        assert result.returncode != 0, target
        assert SECRET.encode() not in result.stdout
    own = await run_process(
        ["cat", "source"], time_limit=30, tool="cat", capture_stdout=True, sandbox=sandbox
    )
    assert own.stdout == b"the job's own file"


async def _connections_while(mode: ResolvedMode, tmp_path: Path) -> tuple[int, int]:
    """Run ffmpeg on ``tcp://127.0.0.1:port`` with the protocol whitelist opened to tcp (as
    if a crafted input had got past it); return (connections seen, ffmpeg's exit code)."""
    connections = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run_process(
            [
                "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                "-protocol_whitelist", "tcp,file", "-rw_timeout", "3000000",
                "-i", f"tcp://127.0.0.1:{port}", "-f", "null", "-",
            ],
            time_limit=30,
            tool="ffmpeg",
            sandbox=Sandbox(mode=mode, workdir=tmp_path),
        )  # fmt: skip
        await asyncio.sleep(0)  # let a pending accept run
    return connections, result.returncode


async def test_ffmpeg_in_bwrap_cannot_open_a_connection(tmp_path: Path) -> None:
    connections, code = await _connections_while("bwrap", tmp_path)
    assert connections == 0
    assert code != 0


async def test_without_bwrap_the_same_ffmpeg_does_connect(tmp_path: Path) -> None:
    # The control: the listener and the command above do see a connection when nothing
    # isolates ffmpeg, so the previous test's zero means something.
    connections, _ = await _connections_while("none", tmp_path)
    assert connections == 1


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_run_leaves_no_process(mode: ResolvedMode, tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"  # a unique sleep duration
    sandbox = Sandbox(mode=mode, workdir=tmp_path)
    # nice in between, as for the ladder: it execs, and bwrap adds its own processes.
    task = asyncio.create_task(
        run_process(
            ["nice", "-n", "10", "sleep", marker], time_limit=60, tool="sleep", sandbox=sandbox
        )
    )
    pids = await eventually(lambda: asyncio.sleep(0, pids_with_arg(marker)))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # _stop waited for the process it spawned; everything in its group is gone with it.
    await wait_until(lambda: not any(pid_alive(pid) for pid in pids))


@pytest.mark.parametrize("mode", MODES)
async def test_a_killed_run_reads_as_killed(mode: ResolvedMode, tmp_path: Path) -> None:
    # A signal is the machine's doing (OOM killer): retried, not blamed on the input.
    sandbox = Sandbox(mode=mode, workdir=tmp_path)
    result = await run_process(
        ["sh", "-c", "kill -9 $$"], time_limit=30, tool="sh", sandbox=sandbox
    )
    assert result.returncode == -9
    with pytest.raises(RetryableError, match="killed by signal 9"):
        check_result(result, "transcoding")
    failed = await run_process(["sh", "-c", "exit 1"], time_limit=30, tool="sh", sandbox=sandbox)
    assert failed.returncode == 1


def _fake_bwrap(directory: Path) -> str:
    """A bwrap that fails like it does in an unprivileged container."""
    directory.mkdir()
    fake = directory / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return f"{directory}:{os.environ['PATH']}"


def test_auto_falls_back_to_a_minimal_environment_where_bwrap_fails(
    fresh_resolution: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", _fake_bwrap(tmp_path / "bin"))
    mode, why = resolve_mode("auto")
    assert mode == "none"
    assert "No permissions to creating new namespace" in why
    with pytest.raises(SandboxUnavailable, match=r"worker\.ffmpeg_sandbox is bwrap, but"):
        resolve_mode("bwrap")
    settings = WorkerSettings(ffmpeg_sandbox="auto", ffmpeg_max_memory_mb=100)
    sandbox = sandbox_for(settings, tmp_path)
    assert sandbox.mode == "none"
    assert sandbox.command(["ffmpeg"]) == [
        "setpriv", "--pdeathsig", "KILL", "--",
        "prlimit", "--core=0", f"--as={100 * 1024 * 1024}:{100 * 1024 * 1024}", "--",
        "ffmpeg",
    ]  # fmt: skip


def test_none_never_tries_bwrap(fresh_resolution: None, tmp_path: Path) -> None:
    # Not even a trial run: "none" must work where bwrap would hang or be forbidden.
    assert resolve_mode("none") == ("none", "worker.ffmpeg_sandbox is none")
