"""Object storage for the API: presigned URLs for clients, HEAD/GET/DELETE internally.

Presigned URLs are made with a client bound to the public endpoint (what clients reach);
everything the API itself does goes through the internal endpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

from shared.s3 import is_not_found, s3_client
from shared.settings import S3Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

_DELETE_BATCH = 1000  # the S3 DeleteObjects maximum
T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str


@dataclass(frozen=True)
class PartInfo:
    number: int
    size: int
    etag: str  # without quotes
    modified: datetime | None = None


@dataclass(frozen=True)
class PresignedPost:
    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime


async def _unless_missing(request: Awaitable[T]) -> T | None:
    """The response to an S3 request; None when it failed because the object is not there."""
    try:
        return await request
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def _is_no_such_upload(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in ("NoSuchUpload", "404")


class Storage:
    def __init__(self, settings: S3Settings, internal: S3Client, public: S3Client) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self._s3 = internal
        self._public = public

    async def presign_put(
        self, key: str, expires_in: int, content_length: int | None = None
    ) -> str:
        # No ContentType is signed: `curl -T file "$url"` sends none. A declared size is
        # signed as Content-Length, so the store refuses a body of any other size.
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_length is not None:
            params["ContentLength"] = content_length
        return await self._public.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_in
        )

    async def presign_post(self, key: str, expires_in: int, max_size: int) -> PresignedPost:
        """A browser-form upload whose policy bounds the size (content-length-range)."""
        post = await self._public.generate_presigned_post(
            self.bucket,
            key,
            Conditions=[["content-length-range", 1, max_size]],
            ExpiresIn=expires_in,
        )
        return PresignedPost(url=post["url"], fields=dict(post["fields"]))

    # ------------------------------------------------------------------ multipart

    async def create_multipart(self, key: str) -> str:
        response = await self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        return response["UploadId"]

    async def presign_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int
    ) -> str:
        return await self._public.generate_presigned_url(
            "upload_part",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": upload_id,
                "PartNumber": part_number,
            },
            ExpiresIn=expires_in,
        )

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo] | None:
        """Every part S3 holds for the upload, by number; None when there is no such upload.

        A part number can appear more than once: SeaweedFS keeps (and lists) each upload of a
        re-sent part until completion, which then uses the one whose ETag the client names.
        """
        parts: list[PartInfo] = []
        marker = 0
        try:
            while True:
                response = await self._s3.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                for part in response.get("Parts", []):
                    parts.append(
                        PartInfo(
                            number=int(part["PartNumber"]),
                            size=int(part["Size"]),
                            etag=str(part["ETag"]).strip('"'),
                            modified=part.get("LastModified"),
                        )
                    )
                if not response.get("IsTruncated"):
                    break
                marker = int(response.get("NextPartNumberMarker", 0))
        except ClientError as exc:
            if _is_no_such_upload(exc):
                return None
            raise
        return sorted(parts, key=lambda p: p.number)

    async def complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> None:
        await self._s3.complete_multipart_upload(
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
        )

    async def abort_multipart(self, key: str, upload_id: str) -> bool:
        """Abort and drop the parts; False when the upload no longer exists."""
        try:
            await self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _is_no_such_upload(exc):
                return False
            raise
        return True

    async def pending_uploads(self, prefix: str) -> list[PendingUpload]:
        """Multipart uploads started and neither completed nor aborted, under ``prefix``."""
        found: list[PendingUpload] = []
        paginator = self._s3.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                found.append(
                    PendingUpload(
                        key=upload["Key"],
                        upload_id=upload["UploadId"],
                        initiated=upload["Initiated"],
                    )
                )
        return found

    async def abort_pending_under(self, prefix: str) -> int:
        """Abort every multipart upload under ``prefix``; returns how many."""
        aborted = 0
        for upload in await self.pending_uploads(prefix):
            aborted += await self.abort_multipart(upload.key, upload.upload_id)
        return aborted

    async def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        paginator = self._s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield StoredObject(
                    key=obj["Key"], size=int(obj["Size"]), last_modified=obj["LastModified"]
                )

    async def presign_get(self, key: str, expires_in: int) -> str:
        return await self._public.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )

    async def head(self, key: str) -> ObjectInfo | None:
        response = await _unless_missing(self._s3.head_object(Bucket=self.bucket, Key=key))
        if response is None:
            return None
        return ObjectInfo(
            size=int(response["ContentLength"]), etag=str(response.get("ETag", "")).strip('"')
        )

    async def get_bytes(self, key: str, limit: int = 4 * 1024 * 1024) -> bytes | None:
        """A small object (a playlist) in memory; None when missing or over ``limit``."""
        response = await _unless_missing(self._s3.get_object(Bucket=self.bucket, Key=key))
        if response is None:
            return None
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
