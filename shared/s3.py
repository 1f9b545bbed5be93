"""aiobotocore S3 client construction from settings, shared by both services."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from shared.settings import S3Settings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


# The error codes S3 implementations use for "no such object": AWS says NoSuchKey for a GET
# and a bare 404 for a HEAD (no body to name the error); SeaweedFS and MinIO say NotFound.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    """True when the request failed only because the object does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


def s3_client(
    settings: S3Settings, *, public: bool = False, max_pool_connections: int = 32
) -> AbstractAsyncContextManager[S3Client]:
    """An S3 client context manager. ``public=True`` signs for the endpoint clients use
    (presigned URLs); otherwise the internal endpoint is used for transfers."""
    endpoint = settings.presign_endpoint if public else str(settings.endpoint_url).rstrip("/")
    config = AioConfig(
        signature_version="s3v4",
        s3={"addressing_style": settings.addressing_style},
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=10,
        read_timeout=60,
    )
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.region,
        aws_access_key_id=settings.access_key.get_secret_value(),
        aws_secret_access_key=settings.secret_key.get_secret_value(),
        config=config,
    )
