"""S3 transfers that keep memory flat in the size of the video: the source is streamed to
disk in chunks, outputs are uploaded from open files, concurrently but bounded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import aiohttp
import botocore.exceptions
import structlog

from shared.s3 import error_code, is_not_found
from transcode_service.errors import PermanentError, RetryableError
from transcode_service.workdir import file_size

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import (
        GetObjectOutputTypeDef,
        GetObjectRequestTypeDef,
        ObjectIdentifierTypeDef,
    )

log = structlog.get_logger(__name__)

CHUNK = 1024 * 1024
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".jpg": "image/jpeg",
    ".json": "application/json",
}
# Segments never change once written (same keys, same content on a re-run), so caches may
# keep them; playlists and covers may be rewritten by a re-run, so they are cached briefly.
CACHE_IMMUTABLE = "max-age=31536000, immutable"
CACHE_SHORT = "max-age=300"


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def cache_control(path: str) -> str:
    return CACHE_IMMUTABLE if path.endswith(".ts") else CACHE_SHORT


def transient(exc: BaseException) -> bool:
    """Errors of the storage or the network rather than of the input."""
    return isinstance(
        exc,
        botocore.exceptions.BotoCoreError
        | botocore.exceptions.ClientError
        | aiohttp.ClientError
        | TimeoutError
        | ConnectionError,
    )


@contextmanager
def retryable(what: str) -> Iterator[None]:
    """Errors of the storage or the network raised as ``RetryableError("{what} failed:
    ...")``; anything else as it is."""
    try:
        yield
    except Exception as exc:
        if transient(exc):
            raise RetryableError(f"{what} failed: {exc}") from exc
        raise


def _open_write(path: Path) -> IO[bytes]:
    return path.open("wb")


def _open_read(path: Path) -> IO[bytes]:
    return path.open("rb")


async def _get_source(
    s3: S3Client, bucket: str, key: str, etag: str | None, byte_range: tuple[int, int] | None
) -> GetObjectOutputTypeDef:
    """GET the upload (with ``etag``: only that version; with ``byte_range``: [start, end)
    of it), its absence or replacement a permanent error."""
    request: GetObjectRequestTypeDef = {"Bucket": bucket, "Key": key}
    if etag:
        request["IfMatch"] = etag
    if byte_range is not None:
        request["Range"] = f"bytes={byte_range[0]}-{byte_range[1] - 1}"
    with retryable("downloading the source"):
        try:
            return await s3.get_object(**request)
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                raise PermanentError("the uploaded file was not found in storage") from None
            if error_code(exc) in ("PreconditionFailed", "412"):
                raise PermanentError(
                    "the uploaded file was overwritten after its upload was completed"
                ) from None
            raise


async def _write_body(response: GetObjectOutputTypeDef, out: IO[bytes], max_bytes: int) -> int:
    """Stream a GET's body into ``out`` at its position; returns the bytes written."""
    size = int(response.get("ContentLength", 0))
    body = response["Body"]
    try:
        with retryable("downloading the source"):
            if size > max_bytes:
                raise PermanentError(
                    f"the file is {size / 1024**3:.1f} GiB; at most "
                    f"{max_bytes / 1024**3:.1f} GiB is allowed"
                )
            written = 0
            async for chunk in body.iter_chunks(CHUNK):
                written += len(chunk)
                if written > max_bytes:
                    raise PermanentError("the file is larger than allowed")
                out.write(chunk)
    finally:
        body.close()
    if written != size:
        raise RetryableError(f"download incomplete: {written} of {size} bytes")
    return written


async def download(
    s3: S3Client, bucket: str, key: str, dest: Path, *, max_bytes: int, etag: str | None = None
) -> int:
    """Stream ``key`` into ``dest``; returns its size. With ``etag``, only that version."""
    response = await _get_source(s3, bucket, key, etag, None)
    with _open_write(dest) as out:
        return await _write_body(response, out, max_bytes)


async def download_ranges(
    s3: S3Client,
    bucket: str,
    key: str,
    dest: Path,
    ranges: Sequence[tuple[int, int]],
    *,
    size: int,
    etag: str | None = None,
) -> int:
    """Only ``ranges`` of ``key``, each at its offset in a sparse ``dest`` of ``size``
    bytes (the rest reads as zeros); returns the bytes fetched."""
    fetched = 0
    with _open_write(dest) as out:
        out.truncate(size)
        for start, end in ranges:
            response = await _get_source(s3, bucket, key, etag, (start, min(end, size)))
            out.seek(start)
            fetched += await _write_body(response, out, end - start)
    return fetched


async def upload_file(
    s3: S3Client, bucket: str, path: Path, key: str, semaphore: asyncio.Semaphore
) -> None:
    async with semaphore:
        with retryable(f"uploading {key}"), _open_read(path) as body:
            await s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentLength=file_size(path),
                ContentType=content_type(key),
                CacheControl=cache_control(key),
            )


async def upload_files(
    s3: S3Client,
    bucket: str,
    files: Iterable[tuple[Path, str]],
    semaphore: asyncio.Semaphore,
) -> None:
    """Upload (path, key) pairs concurrently; ``semaphore`` bounds the whole process."""
    tasks = [
        asyncio.create_task(upload_file(s3, bucket, path, key, semaphore)) for path, key in files
    ]
    try:
        # gather, not a TaskGroup: the first error is raised as itself (not an
        # ExceptionGroup) so the consumer can classify it.
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def exists(s3: S3Client, bucket: str, key: str) -> bool:
    with retryable(f"checking {key}"):
        try:
            await s3.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return False
            raise
    return True


async def delete_keys(s3: S3Client, bucket: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` (any number: S3 takes 1000 a request)."""
    for at in range(0, len(keys), 1000):
        batch: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys[at : at + 1000]]
        with retryable("deleting outputs"):
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})


async def put_json(s3: S3Client, bucket: str, key: str, data: dict[str, Any]) -> None:
    with retryable(f"writing {key}"):
        await s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(data).encode(),
            ContentType="application/json",
        )


async def get_json(s3: S3Client, bucket: str, key: str) -> dict[str, Any] | None:
    """The JSON object at ``key``, or None when there is none."""
    with retryable(f"reading {key}"):
        try:
            response = await s3.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                raw = await body.read()
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return None
            raise
    data = json.loads(raw)
    return data if isinstance(data, dict) else None
