"""A job reads only the version of the upload that was completed (its ETag): bytes written
later through a still-valid upload URL are never processed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shared.messages import CoverJob
from tests.media import make_video
from tests.store import Store
from tests.worker.support import new_video_id
from transcode_service.errors import PermanentError
from transcode_service.handlers import Deps, handle_cover


async def test_overwritten_source_is_not_processed(
    deps: Deps, store: Store, tmp_path: Path
) -> None:
    video_id = new_video_id()
    key = await store.upload_source(make_video(tmp_path / "a.mp4", duration=1.0), video_id)
    etag = (await store.head(key))["ETag"].strip('"')
    # The version that was completed is processed...
    await handle_cover(
        CoverJob(video_id=video_id, job_id=uuid.uuid4(), source_key=key, source_etag=etag), deps
    )
    # ...one written over it afterwards is refused.
    await store.put(key, b"not the completed upload")
    job = CoverJob(video_id=video_id, job_id=uuid.uuid4(), source_key=key, source_etag=etag)
    with pytest.raises(PermanentError, match="overwritten after its upload was completed"):
        await handle_cover(job, deps)
