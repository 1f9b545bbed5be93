"""Wire protocol between the API and the workers: jobs (API -> worker) and events
(worker -> API). Every message carries ``schema_version``; a consumer refuses versions it
does not know with ``MessageError`` rather than guessing.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})


class MessageError(ValueError):
    """A message body that is not valid JSON, has an unknown schema_version, or fails
    validation. Such a message is never retried: it goes to the dead-letter queue."""


def _now() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    video_id: int = Field(gt=0)
    job_id: uuid.UUID
    created_at: datetime = Field(default_factory=_now)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


# --------------------------------------------------------------------------- jobs


_SOURCE_ETAG = (
    "ETag of the upload when it was completed: the worker reads only that version, so "
    "bytes written later through a still-valid upload URL are never processed."
)


class CoverJob(_Message):
    kind: Literal["cover"] = "cover"
    source_key: str = Field(min_length=1, max_length=1024)
    source_etag: str | None = Field(default=None, max_length=128, description=_SOURCE_ETAG)


class TranscodeJob(_Message):
    kind: Literal["transcode"] = "transcode"
    source_key: str = Field(min_length=1, max_length=1024)
    source_etag: str | None = Field(default=None, max_length=128, description=_SOURCE_ETAG)


class ChunkJob(_Message):
    """One time range of a long video's ladder, published by the video's transcode job to
    the transcode queue. ``job_id`` is derived from the parent's (``chunk_job_id``), so a
    re-published chunk is the same job: its result marker and lease deduplicate it."""

    kind: Literal["transcode_chunk"] = "transcode_chunk"
    source_key: str = Field(min_length=1, max_length=1024)
    source_etag: str | None = Field(default=None, max_length=128, description=_SOURCE_ETAG)
    parent_job_id: uuid.UUID
    index: int = Field(ge=0)
    count: int = Field(ge=2, le=100_000)
    start: float = Field(ge=0)  # seconds into the source
    # None for the last chunk: it runs to the end of what the demuxer finds.
    duration: float | None = Field(default=None, gt=0)
    total_duration: float = Field(gt=0)
    segment_seconds: int = Field(ge=1)
    first_segment: int = Field(ge=0)  # global number of the chunk's first segment
    rungs: list[Annotated[int, Field(ge=2, le=8192)]] = Field(min_length=1, max_length=16)
    source_size: int = Field(ge=0)
    # Seconds from the chunk's start to the first packet of its piece of the video's audio,
    # encoded once by the video's job (chunk_audio.py); None: no piece, the chunk encodes
    # the source's audio itself (also a job from a worker that predates the pieces).
    audio_offset: float | None = Field(default=None, ge=-1.0, le=1.0)
    # The frame rate the video's job measured over the whole source: the chunk encodes at
    # it instead of scanning the source again (None: the chunk measures it).
    source_fps: float | None = Field(default=None, gt=0, le=1000)
    # The parts of the source the chunk needs, [start, end) in bytes (byte_ranges.py); None:
    # the whole file.
    byte_ranges: list[tuple[NonNegativeInt, NonNegativeInt]] | None = Field(
        default=None, min_length=1, max_length=16
    )

    @model_validator(mode="after")
    def _index_in_range(self) -> ChunkJob:
        if self.index >= self.count:
            raise ValueError("index must be below count")
        if any(end <= start for start, end in self.byte_ranges or ()):
            raise ValueError("a byte range must end after it starts")
        return self


def chunk_job_id(parent_job_id: uuid.UUID, index: int) -> uuid.UUID:
    return uuid.uuid5(parent_job_id, f"chunk/{index}")


def issued_job_id(job: CoverJob | TranscodeJob | ChunkJob) -> uuid.UUID:
    """The job the API issued that ``job`` works for: a chunk's events and dead letters
    speak for its video's transcode job, the only one the API knows."""
    return job.parent_job_id if isinstance(job, ChunkJob) else job.job_id


AnyJob = CoverJob | TranscodeJob | ChunkJob
Job = Annotated[AnyJob, Field(discriminator="kind")]
# The queues: a chunk job travels on the transcode queue (retries, leases, dead letters).
JobKind = Literal["cover", "transcode"]


def queue_kind(job: AnyJob) -> JobKind:
    """Which job queue (and retry queues) carries ``job``."""
    return "cover" if job.kind == "cover" else "transcode"


# --------------------------------------------------------------------------- events

# A failure reason is for people; longer texts (an ffmpeg log tail) are cut to this.
FAILURE_REASON_MAX = 2000


class CoverReady(_Message):
    type: Literal["cover_ready"] = "cover_ready"
    cover_key: str
    duration: float | None = Field(default=None, ge=0)
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)


class TranscodeProgress(_Message):
    type: Literal["progress"] = "progress"
    percent: float = Field(ge=0, le=100)


class Rendition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    quality: str  # e.g. "720p"
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    bandwidth: int = Field(gt=0)  # bits per second, as in the master playlist
    playlist_key: str
    format: Literal["HLS"] = "HLS"


class TranscodeSucceeded(_Message):
    type: Literal["transcode_succeeded"] = "transcode_succeeded"
    master_key: str
    renditions: list[Rendition] = Field(min_length=1)
    duration: float = Field(ge=0)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    source_size: int = Field(ge=0)


class TranscodeFailed(_Message):
    """A job (cover or transcode) ended without a result; ``reason`` is for people."""

    type: Literal["transcode_failed"] = "transcode_failed"
    job_kind: JobKind
    reason: str = Field(min_length=1, max_length=FAILURE_REASON_MAX)
    permanent: bool


AnyEvent = CoverReady | TranscodeProgress | TranscodeSucceeded | TranscodeFailed
Event = Annotated[AnyEvent, Field(discriminator="type")]

MessageT = TypeVar("MessageT")

_JOB_ADAPTER: TypeAdapter[AnyJob] = TypeAdapter(Job)
_EVENT_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(Event)


def _decode(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("body is not a JSON object")
    version = data.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise MessageError(f"unsupported schema_version: {version!r}")
    return data


def _short(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"invalid message: {where}: {first['msg']}"


def _parse(adapter: TypeAdapter[MessageT], body: bytes | str) -> MessageT:
    data = _decode(body)
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise MessageError(_short(exc)) from None


def parse_job(body: bytes | str) -> AnyJob:
    return _parse(_JOB_ADAPTER, body)


def parse_event(body: bytes | str) -> AnyEvent:
    return _parse(_EVENT_ADAPTER, body)


def event_routing_key(event: AnyEvent) -> str:
    return f"event.{event.type}"
