"""Bodies of the Companion-style multipart routes, in the field names Uppy's
``@uppy/aws-s3`` plugin sends and reads (``uploadId``, ``PartNumber``, ``ETag``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from shared.settings import S3_MAX_PARTS
from shared.status import VideoStatus


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class CreateMultipartRequest(_Request):
    filename: str = Field(min_length=1, max_length=255)
    type: str | None = Field(default=None, max_length=255, description="MIME type")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Uppy's file meta; `title` (or `name`) and `size` are used when present.",
    )
    size: int | None = Field(default=None, gt=0, description="Expected size in bytes.")


class CreateMultipartResponse(BaseModel):
    uploadId: str  # Uppy's field name
    key: str
    video_id: int
    part_size: int = Field(description="Suggested part size in bytes.")


class SignPartResponse(BaseModel):
    url: str = Field(description="Presigned PUT URL of this part.")
    method: Literal["PUT"] = "PUT"
    expires: int = Field(description="Seconds the URL stays valid.")
    headers: dict[str, str] = Field(default_factory=dict)


class UploadedPart(BaseModel):
    PartNumber: int
    Size: int
    ETag: str


class UploadedParts(RootModel[list[UploadedPart]]):
    pass


class CompletePart(_Request):
    PartNumber: int = Field(ge=1, le=S3_MAX_PARTS)
    ETag: str = Field(min_length=1, max_length=128)


class CompleteMultipartRequest(_Request):
    parts: list[CompletePart] = Field(min_length=1, max_length=S3_MAX_PARTS)


class CompleteMultipartResponse(BaseModel):
    location: str = Field(description="The video's API URL.")
    key: str
    video_id: int
    status: VideoStatus


class KeyQuery(_Request):
    key: str = Field(min_length=1, max_length=1024, description="The key from create.")


class EmptyResponse(BaseModel):
    pass
