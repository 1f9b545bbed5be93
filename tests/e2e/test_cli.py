"""``video-cli`` against the running platform (API and worker processes, real SeaweedFS):
login, a ~40 MiB upload in 5 MiB parts interrupted after 3 parts and resumed until online,
list/show/delete, and a failure reported by ``--wait``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest_asyncio

from tests.platform_fixtures import Platform

CLI = str(Path(sys.executable).with_name("video-cli"))
MIB = 1024 * 1024


@dataclass
class CliUser:
    env: dict[str, str]
    email: str
    home: Path

    async def run(
        self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [CLI, *args],
            env={**self.env, **(extra_env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )


def _noisy_clip(path: Path) -> Path:
    """About 42 MiB of real video: 4 s of noise, lossless x264, with audio."""
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4,noise=alls=60:allf=t",
            "-f", "lavfi", "-i", "sine=duration=4",
            "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def cli_user(platform: Platform, tmp_path: Path) -> CliUser:
    email, password = f"cli-{uuid.uuid4().hex[:10]}@example.com", "password-123"
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            platform.api + "/api/v1/users/register",
            json={"nickname": "cli", "email": email, "password": password},
        ) as resp,
    ):
        assert resp.status == 201
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIDEO_", "XDG_"))},
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "VIDEO_API_URL": platform.api,
    }
    user = CliUser(env, email, home)
    done = await user.run("login", "--email", email, "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    creds = home / "config" / "video-cli" / "credentials.json"
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert password not in creds.read_text()
    return user


async def test_interrupted_upload_resumes_and_goes_online(
    cli_user: CliUser, tmp_path: Path, platform: Platform
) -> None:
    clip = await asyncio.to_thread(_noisy_clip, tmp_path / "noise.mp4")
    size = clip.stat().st_size
    assert 40 * MIB <= size <= 45 * MIB
    parts = -(-size // (5 * MIB))

    # The process dies (no cleanup) right after its 3rd part.
    first = await cli_user.run(
        "upload", str(clip), "--title", "Noise", "--part-size", "5", "--concurrency", "1",
        extra_env={"VIDEO_CLI_TEST_EXIT_AFTER_PARTS": "3"},
    )  # fmt: skip
    assert first.returncode == 75, first.stderr
    states = list((cli_user.home / "state" / "video-cli" / "uploads").glob("*.json"))
    assert len(states) == 1
    state = json.loads(states[0].read_text())
    assert sorted(state["parts"]) == ["1", "2", "3"]

    # The server holds those 3 parts; the video is still uploading.
    token = json.loads((cli_user.home / "config/video-cli/credentials.json").read_text())["token"]
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
        async with http.get(
            f"{platform.api}/api/v1/s3/multipart/{state['upload_id']}",
            params={"key": state["key"]},
        ) as resp:
            listed = await resp.json()
        assert [p["PartNumber"] for p in listed] == [1, 2, 3]

    # Run again on the same file: only the other parts are sent, then it follows processing.
    second = await cli_user.run("upload", str(clip), "--part-size", "5", "--wait")
    assert second.returncode == 0, second.stderr
    lines = second.stdout.strip().splitlines()
    assert f"in {parts} parts (3 resumed)" in lines[0]
    playback = lines[-1]
    assert playback.startswith(platform.api) and "master.m3u8" in playback
    assert list((cli_user.home / "state" / "video-cli" / "uploads").glob("*.json")) == []
    # The stream plays.
    probe = await asyncio.to_thread(
        subprocess.run,
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "json", playback],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    assert "h264" in probe.stdout

    video_id = state["video_id"]
    shown = await cli_user.run("show", str(video_id), "--json")
    assert shown.returncode == 0
    video = json.loads(shown.stdout)
    assert (video["status"], video["title"]) == ("online", "Noise")
    listing = await cli_user.run("list", "--json")
    assert video_id in [v["id"] for v in json.loads(listing.stdout)["items"]]
    deleted = await cli_user.run("delete", str(video_id))
    assert deleted.returncode == 0
    gone = await cli_user.run("show", str(video_id))
    assert gone.returncode == 1 and "not found" in gone.stderr


async def test_wait_reports_the_failure_reason(cli_user: CliUser, tmp_path: Path) -> None:
    fake = tmp_path / "not-a-video.mp4"
    fake.write_bytes(os.urandom(6 * MIB))
    done = await cli_user.run("upload", str(fake), "--wait", "--json", "--no-progress")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["status"] == "failed" and summary["error"]
    assert summary["parts"] == 1 and summary["resumed_parts"] == 0  # 16 MiB default parts


async def test_commands_need_a_login(tmp_path: Path, platform: Platform) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIDEO_", "XDG_"))},
        "XDG_CONFIG_HOME": str(tmp_path / "empty"),
        "VIDEO_API_URL": platform.api,
    }
    done = await asyncio.to_thread(
        subprocess.run, [CLI, "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "video-cli login" in done.stderr
