"""This run's bucket as the tests reach it: the S3 client and the bucket's name, always used
together, with the operations the tests repeat on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.storage import list_keys
from shared import keys

if TYPE_CHECKING:
    from pathlib import Path

    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import BlobTypeDef, HeadObjectOutputTypeDef


@dataclass(frozen=True)
class Store:
    s3: S3Client
    bucket: str

    async def keys(self, prefix: str = "") -> list[str]:
        """Every key under ``prefix``, sorted."""
        return await list_keys(self.s3, self.bucket, prefix)

    async def put(self, key: str, body: BlobTypeDef) -> None:
        await self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    async def upload_source(self, path: Path, video_id: int) -> str:
        """Put a local file under a fresh key of the video's raw/ prefix, as the API would, and
        return the key."""
        key = keys.raw_key(video_id, path.suffix or ".bin")
        with path.open("rb") as body:
            await self.put(key, body)
        return key

    async def read(self, key: str) -> bytes:
        response = await self.s3.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            return await body.read()

    async def head(self, key: str) -> HeadObjectOutputTypeDef:
        return await self.s3.head_object(Bucket=self.bucket, Key=key)

    async def delete(self, key: str) -> None:
        await self.s3.delete_object(Bucket=self.bucket, Key=key)

    async def pending_uploads(self, prefix: str) -> list[str]:
        """The ids of the multipart uploads under ``prefix`` neither completed nor aborted."""
        listed = await self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [upload["UploadId"] for upload in listed.get("Uploads", [])]

    async def download_tree(self, prefix: str, dest: Path) -> Path:
        """Copy every object under ``prefix`` into ``dest`` (keeping the layout)."""
        for key in await self.keys(prefix):
            target = dest / key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(await self.read(key))
        return dest
