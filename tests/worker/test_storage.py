"""The worker's storage helpers against the real S3: what a missing object, a storage error
and an error of the input each become."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import botocore.exceptions
import pytest

from transcode_service import storage
from transcode_service.errors import PermanentError, RetryableError

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


def test_storage_errors_are_retryable_and_others_are_not() -> None:
    with (
        pytest.raises(RetryableError, match=r"^reading x failed: .*timed out"),
        storage.retryable("reading x"),
    ):
        raise TimeoutError("timed out")
    failing_s3 = botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3")
    with pytest.raises(RetryableError, match=r"^writing y failed"), storage.retryable("writing y"):
        raise failing_s3
    with pytest.raises(PermanentError, match="bad input"), storage.retryable("reading z"):
        raise PermanentError("bad input")
    with pytest.raises(ValueError), storage.retryable("reading z"):
        raise ValueError("a bug stays a bug")


async def test_missing_objects_and_deletes(s3: S3Client, bucket: str) -> None:
    prefix = f"test-storage/{uuid.uuid4()}/"
    keys = [f"{prefix}{n}.json" for n in range(3)]
    assert not await storage.exists(s3, bucket, keys[0])
    assert await storage.get_json(s3, bucket, keys[0]) is None
    for n, key in enumerate(keys):
        await storage.put_json(s3, bucket, key, {"n": n})
    assert await storage.exists(s3, bucket, keys[2])
    assert await storage.get_json(s3, bucket, keys[1]) == {"n": 1}
    await storage.delete_keys(s3, bucket, keys[:2])
    assert [await storage.exists(s3, bucket, k) for k in keys] == [False, False, True]
    await storage.delete_keys(s3, bucket, [])
    await storage.delete_keys(s3, bucket, keys)


async def test_a_download_of_a_missing_upload_is_permanent(
    s3: S3Client, bucket: str, tmp_path: Path
) -> None:
    missing = f"raw/{uuid.uuid4()}.mp4"
    with pytest.raises(PermanentError, match="not found in storage"):
        await storage.download(s3, bucket, missing, tmp_path / "source", max_bytes=1024)
