"""Upload a sparse file above the 5 GiB single-PUT limit through the multipart path with
``video-cli`` against an isolated API, and report the throughput and peak memory.

    .venv/bin/python -m bench.big_upload [--size-gib 5.5] [--part-size MIB] [--concurrency N]

The file is sparse (no disk used locally) but every byte goes to S3; the object is removed
with the run's bucket at the end. No worker runs: this measures the upload path only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.console import BenchError, say
from bench.memory import peak_rss_kib
from bench.stack import Stack
from shared.s3 import s3_client

CLI = str(Path(sys.executable).with_name("video-cli"))
GIB = 1024**3
MIB = 1024**2


async def _register(api: str) -> tuple[str, str]:
    email, password = f"bench-{uuid.uuid4().hex[:8]}@example.com", "bench-password"
    async with aiohttp.ClientSession() as http:
        body = {"nickname": "bench", "email": email, "password": password}
        async with http.post(f"{api}/api/v1/users/register", json=body) as resp:
            if resp.status != 201:
                raise BenchError(f"register failed: {resp.status} {await resp.text()}")
    return email, password


def _cli(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run(
        [CLI, *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"video-cli {args[0]} failed ({done.returncode}): {done.stderr[-500:]}")
    return done.stdout


async def run(size: int, part_size: int | None, concurrency: int) -> dict[str, float]:
    async with Stack() as stack:
        assert stack.api is not None
        api_pid = stack.api.pid
        email, password = await _register(stack.api_url)
        with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
            home = Path(tmp)
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("VIDEO_", "XDG_"))},
                "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_STATE_HOME": str(home / "state"),
                "VIDEO_API_URL": stack.api_url,
            }
            _cli(["login", "--email", email, "--password-stdin"], env, password + "\n")
            big = home / "big.mp4"
            with big.open("wb") as out:
                out.truncate(size)  # sparse: no local disk, zeros on read
            rss_before = peak_rss_kib(api_pid)
            say(f"uploading {size / GIB:.2f} GiB through video-cli (multipart)")
            args = [
                "upload",
                str(big),
                "--json",
                "--no-progress",
                "--concurrency",
                str(concurrency),
            ]
            if part_size:
                args += ["--part-size", str(part_size)]
            started = time.monotonic()
            summary = json.loads(await asyncio.to_thread(_cli, args, env))
            wall = time.monotonic() - started
            api_peak = peak_rss_kib(api_pid)
        cli_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        async with s3_client(stack.s3_settings) as s3:
            listed = await s3.list_objects_v2(
                Bucket=stack.bucket, Prefix=f"raw/{summary['video_id']}/"
            )
            stored = sum(obj["Size"] for obj in listed.get("Contents", []))
        if stored != size:
            raise BenchError(f"stored object is {stored} bytes, expected {size}")
        return {
            "size_gib": round(size / GIB, 3),
            "parts": summary["parts"],
            "seconds": round(wall, 1),
            "mib_per_second": round(size / MIB / wall, 1),
            "api_peak_rss_mib_before": round(rss_before / 1024, 1),
            "api_peak_rss_mib": round(api_peak / 1024, 1),
            "cli_peak_rss_mib": round(cli_peak / 1024, 1),
        }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.big_upload", description=__doc__)
    parser.add_argument("--size-gib", type=float, default=5.5)
    parser.add_argument("--part-size", type=int, metavar="MIB")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    try:
        result = asyncio.run(run(int(args.size_gib * GIB), args.part_size, args.concurrency))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    width = max(len(k) for k in result)
    for name, value in result.items():
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
