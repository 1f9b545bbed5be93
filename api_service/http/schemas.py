"""Pydantic models of the HTTP API: they validate requests and generate the OpenAPI document.
The error body's models live beside the errors, in ``api_service.http.errors``."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from api_service.db.models import Visibility
from shared.status import VideoStatus


def _as_utc(value: datetime) -> datetime:
    # The database stores naive UTC; clients get an explicit offset.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]

# Largest value of a BIGINT column: a bigger id or offset is a 400, not a database error.
MAX_BIGINT = 2**63 - 1
# Bidirectional embeddings, overrides and isolates: they make a name display as something
# else (e.g. "evil\u202egpj.exe"); the implicit marks (LRM, RLM, ALM) are harmless.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (NUL included), lone surrogates, private-use and unassigned code points.
_REJECTED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})


def _display_text(value: str) -> str:
    """Text shown to other people: NFC-normalised, no control or direction-override chars."""
    for char in value:
        if char in _BIDI_CONTROLS or unicodedata.category(char) in _REJECTED_CATEGORIES:
            raise ValueError(
                f"contains a control, direction-override or unassigned character "
                f"(U+{ord(char):04X})"
            )
    return unicodedata.normalize("NFC", value)


DisplayText = Annotated[str, AfterValidator(_display_text)]


class _Request(BaseModel):
    # Unknown fields are ignored so clients of the original service keep working.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


# --------------------------------------------------------------------------- users


class RegisterRequest(_Request):
    nickname: DisplayText = Field(min_length=1, max_length=64)
    email: EmailStr
    password: str = Field(min_length=8, max_length=1024)


class LoginRequest(_Request):
    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)


class UserResponse(BaseModel):
    # Built from the User row: UserResponse.model_validate(user).
    model_config = ConfigDict(from_attributes=True)

    id: int
    nickname: str
    email: str
    created_at: UtcDatetime


class TokenResponse(BaseModel):
    token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_at: UtcDatetime


# --------------------------------------------------------------------------- uploads


class InitiateUploadRequest(_Request):
    file_name: DisplayText = Field(min_length=1, max_length=255)
    title: DisplayText | None = Field(default=None, min_length=1, max_length=255)
    size: int | None = Field(
        default=None, gt=0, le=MAX_BIGINT, description="Expected size in bytes."
    )
    content_type: str | None = Field(default=None, max_length=255)
    multipart: bool | None = Field(
        default=None,
        description="Ask for a multipart upload (default: multipart above "
        "upload.multipart_threshold bytes of declared size).",
    )
    visibility: Visibility = Field(
        default=Visibility.PUBLIC,
        description="public: anyone may watch it once online; unlisted: anyone with the id, "
        "never listed; private: the owner only.",
    )


class PresignedPostResponse(BaseModel):
    url: str
    fields: dict[str, str] = Field(
        description="Form fields to send before the file field; the policy bounds the size."
    )


class MultipartUploadInfo(BaseModel):
    upload_id: str = Field(description="S3 multipart upload id (Uppy: uploadId).")
    key: str = Field(description="Object key chosen by the server (Uppy: key).")
    part_size: int = Field(description="Suggested part size in bytes (5 MiB - 5 GiB).")
    max_parts: int = 10_000


class InitiateUploadResponse(BaseModel):
    video_id: int
    upload: Literal["single", "multipart"] = "single"
    upload_url: str | None = Field(
        description="Presigned URL: PUT the file's bytes to it (single uploads; signed with "
        "Content-Length when a size was declared)."
    )
    method: Literal["PUT"] = "PUT"
    upload_post: PresignedPostResponse | None = Field(
        default=None,
        description="Alternative to upload_url: a presigned form POST limited to max_size.",
    )
    multipart: MultipartUploadInfo | None = Field(
        default=None,
        description="Multipart uploads: sign parts with GET /api/v1/s3/multipart/{upload_id}"
        "/{part_number}?key=, then POST /api/v1/s3/multipart/{upload_id}/complete?key=.",
    )
    expires_at: UtcDatetime
    max_size: int = Field(description="Largest accepted upload in bytes.")


class CompleteUploadRequest(_Request):
    video_id: int = Field(gt=0, le=MAX_BIGINT)


class UpdateVideoRequest(_Request):
    title: DisplayText | None = Field(default=None, min_length=1, max_length=255)
    visibility: Visibility | None = None


class CompleteUploadResponse(BaseModel):
    video_id: int
    status: VideoStatus


# --------------------------------------------------------------------------- videos


class SourceResponse(BaseModel):
    quality: str
    format: str
    url: str = Field(description="HLS variant playlist a player can open (signed).")
    width: int
    height: int
    bandwidth: int


class VideoColumns(BaseModel):
    # The Video row's columns a response shows: VideoColumns.model_validate(video).
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: VideoStatus
    visibility: Visibility
    progress: float
    error: str | None
    duration: float | None
    width: int | None
    height: int | None
    created_at: UtcDatetime


class VideoResponse(VideoColumns):
    # The row's columns and the links signed for one caller (``api_service.views``).
    cover_url: str | None = Field(description="Short-lived signed URL of the cover image.")
    sources: list[SourceResponse]
    playback_url: str | None = Field(description="Signed HLS master playlist URL.")
    events_url: str = Field(
        description="Live progress as Server-Sent Events (for EventSource), with a "
        "short-lived token scoped to this video."
    )


class VideoListQuery(_Request):
    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=MAX_BIGINT)


class VideoListResponse(BaseModel):
    items: list[VideoResponse]
    limit: int
    offset: int
    total: int


# --------------------------------------------------------------------------- operations


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]
