"""Video lifecycle: uploading -> transcoding -> online | failed."""

from enum import StrEnum


class VideoStatus(StrEnum):
    UPLOADING = "uploading"
    TRANSCODING = "transcoding"
    ONLINE = "online"
    FAILED = "failed"
