"""The API's schema. The worker never touches it: results arrive as events."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.status import VideoStatus


def utcnow() -> datetime:
    # Stored naive in UTC: MariaDB DATETIME has no zone.
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


def _value_enum(enum_class: type[enum.Enum], name: str) -> Enum:
    """A native ENUM column type holding the members' values (not their names); a string
    that is not one of them is refused before it reaches the database."""
    return Enum(
        enum_class,
        name=name,
        values_callable=lambda members: [member.value for member in members],
        native_enum=True,
        validate_strings=True,
    )


VIDEO_STATUS = _value_enum(VideoStatus, "video_status")


# Bounded columns: values from outside are cut to these lengths before they are written.
FILE_NAME_MAX = 255
ETAG_MAX = 128
# The error columns are TEXT; the cut keeps a reason readable in a listing or a log line.
VIDEO_ERROR_MAX = 4000
OUTBOX_ERROR_MAX = 2000


class Visibility(enum.StrEnum):
    """Who may see an online video: anyone and listed (public), anyone with its id
    (unlisted), or its owner only (private)."""

    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"


VIDEO_VISIBILITY = _value_enum(Visibility, "video_visibility")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    nickname: Mapped[str] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class Video(Base):
    __tablename__ = "videos"
    __table_args__ = (
        Index("ix_videos_owner_created", "owner_id", "created_at"),
        Index("ix_videos_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(255))
    original_file_name: Mapped[str] = mapped_column(String(FILE_NAME_MAX))
    source_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    status: Mapped[VideoStatus] = mapped_column(VIDEO_STATUS, default=VideoStatus.UPLOADING)
    visibility: Mapped[Visibility] = mapped_column(
        VIDEO_VISIBILITY, default=Visibility.PUBLIC, server_default=Visibility.PUBLIC.value
    )
    progress: Mapped[float] = mapped_column(Double, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)  # VIDEO_ERROR_MAX
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # The S3 multipart upload in progress (None for a single PUT or once completed).
    upload_id: Mapped[str | None] = mapped_column(String(255), default=None)
    # What the client said at initiate; enforced by the store or at complete.
    declared_size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    etag: Mapped[str | None] = mapped_column(String(ETAG_MAX), default=None)
    duration: Mapped[float | None] = mapped_column(Double, default=None)
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    cover_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    master_key: Mapped[str | None] = mapped_column(String(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow, onupdate=utcnow)


class VideoSource(Base):
    __tablename__ = "video_sources"
    __table_args__ = (UniqueConstraint("video_id", "quality", "format", name="uq_source"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    video_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("videos.id", ondelete="CASCADE"))
    quality: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(16))
    playlist_key: Mapped[str] = mapped_column(String(1024))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    bandwidth: Mapped[int] = mapped_column(BigInteger)


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_sent_at", "sent_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    # Not a foreign key: a sent row outlives its video as a record of what was published.
    video_id: Mapped[int | None] = mapped_column(BigInteger, index=True, default=None)
    exchange: Mapped[str] = mapped_column(String(255))
    routing_key: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)  # OUTBOX_ERROR_MAX


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)


class WebhookDelivery(Base):
    """The webhook outbox: written in the transaction that changed the video, sent by the
    dispatcher (at least once, with the same webhook-id on every attempt)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "message_id", name="uq_delivery_message"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    message_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    video_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(), default=None)


class RateLimitHits(Base):
    """One fixed window of one rate limit (e.g. login attempts from one address)."""

    __tablename__ = "rate_limits"
    __table_args__ = (Index("ix_rate_limits_expires_at", "expires_at"),)

    bucket: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(BigInteger)
