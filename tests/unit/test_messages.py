"""Every message model round-trips through JSON; bad bodies raise one typed error."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import BaseModel

from shared.messages import (
    CoverJob,
    CoverReady,
    MessageError,
    Rendition,
    TranscodeFailed,
    TranscodeJob,
    TranscodeProgress,
    TranscodeSucceeded,
    event_routing_key,
    parse_event,
    parse_job,
)

JOB = uuid.uuid4()

JOBS: list[CoverJob | TranscodeJob] = [
    CoverJob(video_id=7, job_id=JOB, source_key="raw/7/a.mp4"),
    TranscodeJob(video_id=7, job_id=JOB, source_key="raw/7/a.mp4"),
]
EVENTS: list[CoverReady | TranscodeProgress | TranscodeSucceeded | TranscodeFailed] = [
    CoverReady(
        video_id=7,
        job_id=JOB,
        cover_key="processed/7/cover.jpg",
        duration=2.5,
        width=640,
        height=360,
    ),
    TranscodeProgress(video_id=7, job_id=JOB, percent=42.5),
    TranscodeSucceeded(
        video_id=7,
        job_id=JOB,
        master_key="processed/7/master.m3u8",
        renditions=[
            Rendition(
                quality="720p",
                width=1280,
                height=720,
                bandwidth=3_000_000,
                playlist_key="processed/7/hls_720p/720p.m3u8",
            )
        ],
        duration=20.0,
        width=1920,
        height=1080,
        source_size=12345,
    ),
    TranscodeFailed(
        video_id=7, job_id=JOB, job_kind="transcode", reason="not a video", permanent=True
    ),
]


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.kind)
def test_job_round_trip(job: CoverJob | TranscodeJob) -> None:
    parsed = parse_job(job.to_json())
    assert parsed == job
    assert type(parsed) is type(job)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.type)
def test_event_round_trip(
    event: CoverReady | TranscodeProgress | TranscodeSucceeded | TranscodeFailed,
) -> None:
    parsed = parse_event(event.to_json())
    assert parsed == event
    assert type(parsed) is type(event)
    assert event_routing_key(parsed) == f"event.{event.type}"


def test_schema_version_is_on_the_wire() -> None:
    for message in [*JOBS, *EVENTS]:
        assert isinstance(message, BaseModel)
        assert json.loads(message.model_dump_json())["schema_version"] == 1


def _job_dict() -> dict[str, object]:
    data: dict[str, object] = json.loads(JOBS[0].to_json())
    return data


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"\xff\xfe not json", "not valid JSON"),
        (b"{truncated", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (json.dumps({**_job_dict(), "schema_version": 2}).encode(), "schema_version"),
        (
            json.dumps({k: v for k, v in _job_dict().items() if k != "schema_version"}).encode(),
            "schema_version",
        ),
        (json.dumps({**_job_dict(), "kind": "thumbnail"}).encode(), "invalid message"),
        (json.dumps({**_job_dict(), "video_id": -1}).encode(), "video_id"),
        (json.dumps({**_job_dict(), "unexpected": True}).encode(), "unexpected"),
    ],
)
def test_bad_job_bodies_raise_message_error(body: bytes, fragment: str) -> None:
    with pytest.raises(MessageError, match=fragment):
        parse_job(body)


def test_a_job_is_not_an_event() -> None:
    with pytest.raises(MessageError):
        parse_event(JOBS[0].to_json())
    with pytest.raises(MessageError):
        parse_job(EVENTS[0].to_json())


def test_progress_is_bounded() -> None:
    body = json.loads(EVENTS[1].to_json())
    body["percent"] = 140
    with pytest.raises(MessageError, match="percent"):
        parse_event(json.dumps(body))
