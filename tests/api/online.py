"""A video made online through the real event path, with hand-written playlists in S3 (no
encode): enough for visibility and playlist-signing tests, and any segment count."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aio_pika.abc import AbstractRobustConnection
from sqlalchemy.ext.asyncio import AsyncEngine

from harness.broker import publish_event
from harness.polling import eventually
from shared.keys import master_playlist_key, processed_prefix, rendition_playlist_key
from shared.messages import Rendition, TranscodeSucceeded
from shared.topology import Topology
from tests.api.helpers import (
    complete,
    initiate,
    issued_job,
    upload,
    video_row,
)
from tests.api.support import Api, User

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

SEGMENT_SECONDS = 6


def variant_text(segments: int) -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{SEGMENT_SECONDS}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    for i in range(segments):
        lines += [f"#EXTINF:{SEGMENT_SECONDS}.000000,", f"240p_{i:05d}.ts"]
    return "\n".join([*lines, "#EXT-X-ENDLIST"]) + "\n"


async def online_video(
    api: Api,
    user: User,
    db: AsyncEngine,
    s3: S3Client,
    clip: Path,
    amqp: AbstractRobustConnection,
    topology: Topology,
    *,
    segments: int = 3,
    **initiate_fields: Any,
) -> int:
    init = await initiate(api, user, clip.name, **initiate_fields)
    video_id: int = init["video_id"]
    await upload(clip, init["upload_url"])
    status, body = await complete(api, user, video_id)
    assert status == 202, body
    bucket = api.settings.s3.bucket
    variant_key = rendition_playlist_key(video_id, 240)
    master = (
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x240\n"
        + variant_key.removeprefix(processed_prefix(video_id))
        + "\n"
    )
    await s3.put_object(Bucket=bucket, Key=master_playlist_key(video_id), Body=master.encode())
    await s3.put_object(Bucket=bucket, Key=variant_key, Body=variant_text(segments).encode())
    event = TranscodeSucceeded(
        video_id=video_id,
        job_id=await issued_job(db, video_id, "transcode"),
        master_key=master_playlist_key(video_id),
        renditions=[
            Rendition(
                quality="240p",
                width=320,
                height=240,
                bandwidth=400_000,
                playlist_key=variant_key,
            )
        ],
        duration=float(segments * SEGMENT_SECONDS),
        width=320,
        height=240,
        source_size=1,
    )
    await publish_event(amqp, topology, event)

    async def status_of() -> Any:
        found = await video_row(db, video_id)
        return found and found["status"]

    await eventually(status_of, lambda s: s == "online")
    return video_id
