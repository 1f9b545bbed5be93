"""Where the CLI keeps things: credentials in the user's config directory (mode 0600) and the
state of unfinished uploads in the user's state directory (XDG on Linux, via platformdirs)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from platformdirs import user_config_path, user_state_path

APP = "video-cli"


@dataclass
class Credentials:
    api: str
    email: str
    token: str


@dataclass
class UploadState:
    """One unfinished multipart upload of one file (keyed by path, size and mtime)."""

    api: str
    path: str
    size: int
    mtime_ns: int
    video_id: int
    upload_id: str
    key: str
    part_size: int
    parts: dict[str, str] = field(default_factory=dict)  # part number -> ETag


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start: a token is never readable by others, even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)


def credentials_path() -> Path:
    return user_config_path(APP) / "credentials.json"


def load_credentials() -> Credentials | None:
    try:
        return Credentials(**json.loads(credentials_path().read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_credentials(credentials: Credentials) -> Path:
    path = credentials_path()
    _write_private(path, asdict(credentials))
    return path


def _state_path(path: Path, size: int, mtime_ns: int) -> Path:
    digest = hashlib.sha256(f"{path.resolve()}\0{size}\0{mtime_ns}".encode()).hexdigest()
    return user_state_path(APP) / "uploads" / f"{digest[:32]}.json"


@dataclass(frozen=True)
class LocalFile:
    path: str  # absolute
    size: int
    mtime_ns: int
    state_file: Path


def local_file(path: Path) -> LocalFile:
    stat = path.stat()
    return LocalFile(
        str(path.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
        _state_path(path, stat.st_size, stat.st_mtime_ns),
    )


def load_state(state_file: Path) -> UploadState | None:
    try:
        return UploadState(**json.loads(state_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_state(state_file: Path, state: UploadState) -> None:
    _write_private(state_file, asdict(state))


def drop_state(state_file: Path) -> None:
    state_file.unlink(missing_ok=True)
