"""``video-cli``: log in, upload (resumable, with a progress bar), list, show, delete.

The password is prompted (getpass) or read from standard input with ``--password-stdin``; it
is never an argument, so it stays out of the shell history. The token is kept in the user's
config directory with mode 0600.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from video_cli.client import ApiClient, ApiFailure
from video_cli.store import Credentials, load_credentials, save_credentials
from video_cli.upload import MIB, Progress, upload_file

DEFAULT_API = "http://localhost:8000"
API_ENV = "VIDEO_API_URL"
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-cli", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--api", help=f"API base URL (default: ${API_ENV}, the login's, or {DEFAULT_API})"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    login = commands.add_parser("login", help="log in and store the token")
    login.add_argument("--email", help="prompted when missing")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    upload = commands.add_parser("upload", help="upload a video (resumes an interrupted one)")
    upload.add_argument("file", type=Path)
    upload.add_argument("--title")
    upload.add_argument(
        "--wait", action="store_true", help="follow processing; print the playback URL"
    )
    upload.add_argument("--json", action="store_true", help="one JSON object as the last line")
    upload.add_argument("--part-size", type=int, metavar="MIB", help="part size in MiB (>= 5)")
    upload.add_argument("--concurrency", type=int, default=4, help="parts in flight")
    upload.add_argument("--no-progress", action="store_true", help="no progress bars")
    upload.add_argument("--timeout", type=float, default=3600.0, help="--wait limit (seconds)")

    listing = commands.add_parser("list", help="your videos, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true")

    show = commands.add_parser("show", help="one video")
    show.add_argument("video_id", type=int)
    show.add_argument("--json", action="store_true")

    delete = commands.add_parser("delete", help="delete a video and its files")
    delete.add_argument("video_id", type=int)
    delete.add_argument("--json", action="store_true")
    return parser


def _api(args: argparse.Namespace, credentials: Credentials | None) -> str:
    chosen = args.api or os.environ.get(API_ENV) or (credentials.api if credentials else None)
    return (chosen or DEFAULT_API).rstrip("/")


def _logged_in(args: argparse.Namespace) -> tuple[str, str]:
    credentials = load_credentials()
    if credentials is None:
        raise CliError("not logged in: run `video-cli login` first")
    return _api(args, credentials), credentials.token


def _ask_login(args: argparse.Namespace) -> None:
    """Prompts before the event loop starts (they block)."""
    args.email = args.email or input("email: ").strip()
    if args.password_stdin:
        args.password = sys.stdin.readline().rstrip("\n")
    else:
        args.password = getpass.getpass("password: ")


def _check_upload(args: argparse.Namespace) -> None:
    if not args.file.is_file():
        raise CliError(f"no such file: {args.file}")
    if args.part_size is not None and args.part_size < 5:
        raise CliError("--part-size must be at least 5 (MiB)")


async def _login(args: argparse.Namespace) -> int:
    api = _api(args, load_credentials())
    email, password = args.email, args.password
    async with ApiClient(api) as client:
        token = await client.login(email, password)
    path = save_credentials(Credentials(api=api, email=email, token=token))
    print(f"logged in to {api} as {email} (token saved in {path})")
    return 0


def _bar(disabled: bool, unit: str = "B") -> Any:
    def make(total: int, initial: int, description: str) -> Progress:
        bar: Progress = tqdm(
            total=total,
            initial=initial,
            desc=description,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024,
            disable=disabled,
            file=sys.stderr,
            dynamic_ncols=True,
        )
        return bar

    return make


async def _wait(client: ApiClient, video_id: int, limit: float, quiet: bool) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    bar = tqdm(
        total=100, desc="processing", unit="%", disable=quiet, file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}",
    )  # fmt: skip
    shown = 0.0
    try:
        while True:
            video = await client.video(video_id)
            progress = float(video.get("progress") or 0.0) * 100
            if progress > shown:
                bar.update(progress - shown)
                shown = progress
            if video["status"] in ("online", "failed"):
                return video
            if loop.time() > deadline:
                raise CliError(f"video {video_id} still {video['status']} after {limit:.0f} s")
            await asyncio.sleep(1.0)
    finally:
        bar.close()


async def _upload(args: argparse.Namespace) -> int:
    api, token = _logged_in(args)
    path: Path = args.file
    async with ApiClient(api, token) as client:
        result = await upload_file(
            client,
            path,
            title=args.title,
            part_size=args.part_size * MIB if args.part_size else None,
            concurrency=args.concurrency,
            progress=_bar(args.no_progress),
        )
        rate = result.size / result.seconds / MIB if result.seconds > 0 else 0.0
        summary: dict[str, Any] = {
            "video_id": result.video_id,
            "status": result.status,
            "size": result.size,
            "parts": result.parts,
            "resumed_parts": result.resumed_parts,
            "seconds": round(result.seconds, 3),
            "mib_per_second": round(rate, 2),
        }
        if not args.json:
            print(
                f"uploaded video {result.video_id}: {result.size} bytes in {result.parts} parts "
                f"({result.resumed_parts} resumed), {rate:.1f} MiB/s"
            )
        if not args.wait:
            if args.json:
                print(json.dumps(summary))
            return 0
        video = await _wait(client, result.video_id, args.timeout, args.no_progress)
    summary.update(status=video["status"], error=video.get("error"))
    summary["playback_url"] = video.get("playback_url")
    if args.json:
        print(json.dumps(summary))
    elif video["status"] == "online":
        print(video["playback_url"])
    else:
        print(f"failed: {video.get('error') or 'unknown reason'}")
    return 0 if video["status"] == "online" else EXIT_FAILED


def _row(video: dict[str, Any]) -> str:
    progress = f"{float(video.get('progress') or 0) * 100:.0f}%"
    return f"{video['id']:>8}  {video['status']:<11} {progress:>4}  {video['title']}"


async def _list(args: argparse.Namespace) -> int:
    api, token = _logged_in(args)
    async with ApiClient(api, token) as client:
        page = await client.videos(args.limit, args.offset)
    if args.json:
        print(json.dumps(page))
    else:
        print(f"{'id':>8}  {'status':<11} {'done':>4}  title")
        for video in page["items"]:
            print(_row(video))
        print(f"({len(page['items'])} of {page['total']})")
    return 0


async def _show(args: argparse.Namespace) -> int:
    api, token = _logged_in(args)
    async with ApiClient(api, token) as client:
        video = await client.video(args.video_id)
    if args.json:
        print(json.dumps(video))
    else:
        for name in ("id", "title", "status", "progress", "error", "duration", "width", "height"):
            print(f"{name:>12}: {video.get(name)}")
        for source in video.get("sources", []):
            print(f"{source['quality']:>12}: {source['width']}x{source['height']}")
        print(f"{'playback':>12}: {video.get('playback_url')}")
    return 0


async def _delete(args: argparse.Namespace) -> int:
    api, token = _logged_in(args)
    async with ApiClient(api, token) as client:
        await client.delete(args.video_id)
    print(json.dumps({"deleted": args.video_id}) if args.json else f"deleted {args.video_id}")
    return 0


COMMANDS = {"login": _login, "upload": _upload, "list": _list, "show": _show, "delete": _delete}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if args.command == "login":
            _ask_login(args)
        elif args.command == "upload":
            _check_upload(args)
        code = asyncio.run(COMMANDS[args.command](args))
    except CliError as exc:
        print(f"video-cli: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    except ApiFailure as exc:
        print(f"video-cli: {exc.message} (HTTP {exc.status})", file=sys.stderr)
        code = EXIT_FAILED
    except (aiohttp.ClientError, OSError) as exc:
        hint = " (run the same upload again to resume)" if args.command == "upload" else ""
        print(f"video-cli: {exc}{hint}", file=sys.stderr)
        code = EXIT_FAILED
    except (KeyboardInterrupt, EOFError):
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
