"""The run's bucket from outside the services: list what is under a prefix, remove it all."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef


async def list_keys(s3: S3Client, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return sorted(keys)


async def delete_bucket(s3: S3Client, bucket: str) -> None:
    """Empty the bucket (S3 refuses to delete one that is not) and delete it."""
    paginator = s3.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket):
        objects: list[ObjectIdentifierTypeDef] = [
            {"Key": o["Key"]} for o in page.get("Contents", [])
        ]
        if objects:
            await s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})
    await s3.delete_bucket(Bucket=bucket)
