"""Fixtures of the worker tests: handler dependencies over the real S3, sources uploaded
to this run's bucket, and helpers to read what the worker wrote."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shared.s3 import s3_client
from shared.settings import Settings
from transcode_service.handlers import Deps
from transcode_service.metrics import Metrics

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

Uploader = Callable[[Path], Awaitable[str]]


@pytest.fixture(scope="session")
async def s3(settings: Settings, bucket: str) -> AsyncIterator[S3Client]:
    async with s3_client(settings.s3) as client:
        yield client


@pytest.fixture(scope="session")
def deps(settings: Settings, s3: S3Client, bucket: str) -> Deps:
    return Deps(
        settings=settings.worker,
        s3=s3,
        bucket=bucket,
        upload_semaphore=asyncio.Semaphore(settings.worker.upload_concurrency),
        metrics=Metrics(),
    )


@pytest.fixture(scope="session")
def upload_source(s3: S3Client, bucket: str) -> Uploader:
    """Put a local file under a fresh raw/ key and return the key."""

    async def upload(path: Path) -> str:
        key = f"raw/{uuid.uuid4().int % 10**6}/{uuid.uuid4()}{path.suffix}"
        with path.open("rb") as body:
            await s3.put_object(Bucket=bucket, Key=key, Body=body)
        return key

    return upload


_ids = itertools.count(1)


def new_video_id() -> int:
    """Distinct video ids within the run (the bucket is per run, so no clash across runs)."""
    return next(_ids)


async def list_keys(s3: S3Client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return sorted(keys)


async def download_tree(s3: S3Client, bucket: str, prefix: str, dest: Path) -> Path:
    """Copy every object under ``prefix`` into ``dest`` (keeping the layout)."""
    for key in await list_keys(s3, bucket, prefix):
        target = dest / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        response = await s3.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            data = await body.read()
        target.write_bytes(data)
    return dest
