"""The bucket's CORS rules, so that pages on the configured origins can PUT uploads to their
presigned URLs and GET segments, covers and playlists-referenced objects straight from S3.

``python -m shared.bucket_cors`` applies ``server.cors_origins`` to ``s3.bucket``; the stack
setup (scripts/stack.sh) runs it after creating the bucket. AWS S3 answers browsers only by
such rules; SeaweedFS answers any origin while a bucket has none and enforces them once set.
A store without the bucket CORS API (community MinIO answers NotImplemented: its CORS is
server-wide, ``MINIO_API_CORS_ALLOW_ORIGIN``) and keys without ``s3:PutBucketCORS`` are
reported, not treated as a failure of the setup.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from shared.s3 import s3_client
from shared.settings import SettingsError, load_settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import CORSConfigurationTypeDef

# PUT: single presigned upload (and multipart parts); GET/HEAD: segments and covers.
ALLOWED_METHODS = ["GET", "HEAD", "PUT"]
UNSUPPORTED = {"NotImplemented", "MethodNotAllowed"}
# ETag: a multipart client needs each part's ETag to complete the upload.
EXPOSED_HEADERS = ["ETag", "Content-Length", "Content-Type"]
MAX_AGE_SECONDS = 3600


def cors_configuration(origins: Sequence[str]) -> CORSConfigurationTypeDef:
    return {
        "CORSRules": [
            {
                "AllowedOrigins": list(origins),
                "AllowedMethods": ALLOWED_METHODS,
                "AllowedHeaders": ["*"],
                "ExposeHeaders": EXPOSED_HEADERS,
                "MaxAgeSeconds": MAX_AGE_SECONDS,
            }
        ]
    }


async def apply_bucket_cors(client: S3Client, bucket: str, origins: Sequence[str]) -> None:
    await client.put_bucket_cors(Bucket=bucket, CORSConfiguration=cors_configuration(origins))


async def _main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    origins = settings.server.cors_origins
    async with s3_client(settings.s3) as client:
        try:
            await apply_bucket_cors(client, settings.s3.bucket, origins)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in UNSUPPORTED:
                print(
                    f"bucket {settings.s3.bucket}: this S3 has no bucket CORS rules; "
                    "configure CORS on the server (MinIO: MINIO_API_CORS_ALLOW_ORIGIN)"
                )
                return 0
            if exc.response.get("Error", {}).get("Code") == "AccessDenied":
                # An operator's S3 whose keys may not change the bucket: not fatal to setup.
                print(
                    f"bucket {settings.s3.bucket}: not allowed to set CORS rules; set them "
                    "yourself (README, 'In the browser')",
                    file=sys.stderr,
                )
                return 0
            print(f"bucket {settings.s3.bucket}: CORS not set ({exc})", file=sys.stderr)
            return 1
    print(f"bucket {settings.s3.bucket}: CORS for {', '.join(origins)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
