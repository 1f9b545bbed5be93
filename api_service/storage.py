"""Object storage for the API: presigned URLs for clients, HEAD/GET/DELETE internally.

Presigned URLs are made with a client bound to the public endpoint (what clients reach);
everything the API itself does goes through the internal endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from shared.s3 import is_not_found, s3_client
from shared.settings import S3Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_DELETE_BATCH = 1000  # the S3 DeleteObjects maximum


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str


class Storage:
    def __init__(self, settings: S3Settings, internal: S3Client, public: S3Client) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._s3 = internal
        self._public = public

    async def presign_put(self, key: str, expires_in: int) -> str:
        # No ContentType is signed: `curl -T file "$url"` sends none.
        return await self._public.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def presign_get(self, key: str, expires_in: int) -> str:
        return await self._public.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            response = await self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        return ObjectInfo(
            size=int(response["ContentLength"]), etag=str(response.get("ETag", "")).strip('"')
        )

    async def get_bytes(self, key: str, limit: int = 4 * 1024 * 1024) -> bytes | None:
        """A small object (a playlist) in memory; None when missing or over ``limit``."""
        try:
            response = await self._s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        async with response["Body"] as body:
            if int(response.get("ContentLength", 0)) > limit:
                return None
            data: bytes = await body.read()
        return data

    async def delete(self, key: str) -> None:
        await self._s3.delete_object(Bucket=self.bucket, Key=key)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many were removed."""
        deleted = 0
        paginator = self._s3.get_paginator("list_objects_v2")
        batch: list[str] = []
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                batch.append(obj["Key"])
                if len(batch) == _DELETE_BATCH:
                    deleted += await self._delete_batch(batch)
                    batch = []
        if batch:
            deleted += await self._delete_batch(batch)
        return deleted

    async def _delete_batch(self, keys: list[str]) -> int:
        response = await self._s3.delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True},
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise RuntimeError(f"could not delete {first.get('Key')}: {first.get('Message')}")
        return len(keys)

    async def ping(self) -> None:
        await self._s3.head_bucket(Bucket=self.bucket)


@asynccontextmanager
async def open_storage(settings: S3Settings) -> AsyncIterator[Storage]:
    async with AsyncExitStack() as stack:
        internal = await stack.enter_async_context(s3_client(settings))
        public = await stack.enter_async_context(s3_client(settings, public=True))
        yield Storage(settings, internal, public)
