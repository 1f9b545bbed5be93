"""Presigning many GET URLs at once, off the event loop.

A variant playlist of a 6 h video names 3 600 segments; presigning them one by one through
the async client costs about a millisecond each on the event loop, which stalls every other
request for seconds. Signing needs no I/O with static credentials, so a plain (synchronous)
botocore client, configured exactly like the async one, signs the whole batch in a worker
thread: the URLs are the same, and the event loop stays free.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import botocore.session
from botocore.config import Config

from shared.settings import S3Settings


class BulkPresigner:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client  # botocore clients are thread-safe
        self._bucket = bucket

    def _sign_all(self, keys: Sequence[str], expires_in: int) -> list[str]:
        return [
            self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
            )
            for key in keys
        ]

    async def presign_get_many(self, keys: Sequence[str], expires_in: int) -> list[str]:
        return await asyncio.to_thread(self._sign_all, list(keys), expires_in)


@contextmanager
def open_bulk_presigner(settings: S3Settings) -> Iterator[BulkPresigner]:
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=settings.presign_endpoint,
        region_name=settings.region,
        aws_access_key_id=settings.access_key.get_secret_value(),
        aws_secret_access_key=settings.secret_key.get_secret_value(),
        config=Config(signature_version="s3v4", s3={"addressing_style": settings.addressing_style}),
    )
    try:
        yield BulkPresigner(client, settings.bucket)
    finally:
        client.close()
