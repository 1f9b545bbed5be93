"""Result markers: a small object per finished job, written after its result event was
confirmed by the broker. A redelivered copy of a finished job (e.g. after the broker's
consumer timeout closed the channel before the ack) finds the marker and is acked without
being processed again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared import keys
from transcode_service import storage

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


def marker_key(video_id: int, job_id: str) -> str:
    return f"{keys.processed_prefix(video_id)}.jobs/{job_id}.json"


class ResultMarkers:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    async def get(self, video_id: int, job_id: str) -> dict[str, Any] | None:
        return await storage.get_json(self._s3, self._bucket, marker_key(video_id, job_id))

    async def put(self, video_id: int, job_id: str, event: dict[str, Any]) -> None:
        await storage.put_json(self._s3, self._bucket, marker_key(video_id, job_id), event)
