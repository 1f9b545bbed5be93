"""Typed settings: defaults < configs/config.yaml < environment variables.

One place reads configuration. Every option is a typed field with a default, grouped in
sections (server, database, s3, rabbitmq, worker, auth, upload, logging). Environment variables
use the prefix ``VIDEO_`` and ``__`` between section and key, e.g. ``VIDEO_DATABASE__URL`` or
``VIDEO_WORKER__TRANSCODE_CONCURRENCY``. The YAML file is ``configs/config.yaml`` unless
``VIDEO_CONFIG_FILE`` names another one.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    AnyUrl,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "VIDEO_"
CONFIG_FILE_ENV = "VIDEO_CONFIG_FILE"
DEFAULT_CONFIG_FILE = Path("configs/config.yaml")
DEV_JWT_SECRET = "dev-only-insecure-secret-change-me-0123456789"
# The S3 keys of configs/config.yaml and the local SeaweedFS, and MinIO's factory login.
DEV_S3_KEYS = frozenset({"video-dev-access", "video-dev-secret-key", "minioadmin"})
# RabbitMQ's factory account: it only works from localhost, but never outside development.
DEFAULT_BROKER_LOGINS = frozenset({("guest", "guest")})
MIN_JWT_SECRET_BYTES = 32
# Words that mark a value copied from documentation or a manifest rather than generated.
_PLACEHOLDER = re.compile(
    r"change[-_ ]?me|replace[-_ ]?me|placeholder|example|insecure|"
    r"(?:dev|local|test|cluster)[-_]only|not[-_]a[-_]secret",
    re.IGNORECASE,
)


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line naming the key."""


def _must_be_url(value: SecretStr) -> SecretStr:
    AnyUrl(value.get_secret_value())
    return value


# Validated as a URL, kept secret because it may hold a password.
SecretUrl = Annotated[SecretStr, AfterValidator(_must_be_url)]


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Base URL clients reach the API at; playlist URLs served by the API are built from it.
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8000")
    # Anything but an explicit "development" (configs/config.yaml sets it for make run) refuses
    # placeholder secrets and default credentials at start-up.
    environment: Literal["development", "production"] = "production"
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    shutdown_timeout: float = Field(10.0, gt=0)
    outbox_poll_interval: float = Field(0.5, gt=0)
    outbox_batch_size: int = Field(100, gt=0)
    # Origins that browsers may call the JSON API and the playlists from (CORS). "*" allows
    # any origin without credentials, which is enough because the API authenticates with a
    # bearer header or a token in the URL, never with cookies. Production: list the sites.
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    # Live progress (SSE): how often a stream re-reads its video row, and how often it sends
    # a comment line so that proxies keep an idle stream open.
    events_poll_interval: float = Field(0.5, gt=0)
    events_heartbeat: float = Field(15.0, gt=0)
    # A stream ends after this long even if the video is still processing; EventSource then
    # reconnects (to any replica) and gets the current state. Bounds idle streams.
    events_max_seconds: float = Field(300.0, gt=0)
    # Where the web page finds hls.js (installed by `make web` from npm, not in the repo).
    hlsjs_dir: Path = Path("web/node_modules/hls.js/dist")

    @field_validator("cors_origins")
    @classmethod
    def _origins_valid(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin != "*" and not re.fullmatch(r"https?://[^/?#\s]+", origin):
                raise ValueError(f"{origin!r} is not '*' or an origin like https://example.com")
        return value


class DatabaseSettings(BaseModel):
    url: SecretUrl = SecretStr("mysql+asyncmy://root@127.0.0.1:3306/video_platform")
    pool_size: int = Field(10, gt=0)
    max_overflow: int = Field(10, ge=0)
    pool_recycle: int = Field(1800, gt=0)
    echo: bool = False


class S3Settings(BaseModel):
    endpoint_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8333")
    # Endpoint put into presigned URLs handed to clients (e.g. a public hostname in front
    # of MinIO). Defaults to endpoint_url.
    public_endpoint_url: AnyHttpUrl | None = None
    region: str = "us-east-1"
    access_key: SecretStr = SecretStr("video-dev-access")
    secret_key: SecretStr = SecretStr("video-dev-secret-key")
    bucket: str = Field("videos", min_length=3, max_length=63)
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    # Short: a single-PUT URL or a part URL stops working soon after it was handed out
    # (multipart clients sign parts on demand, so only a single PUT needs it to be long).
    upload_url_expiry: int = Field(900, gt=0, le=7 * 24 * 3600)
    download_url_expiry: int = Field(3600, gt=0, le=7 * 24 * 3600)

    @property
    def presign_endpoint(self) -> str:
        return str(self.public_endpoint_url or self.endpoint_url).rstrip("/")


class RabbitMQSettings(BaseModel):
    url: SecretUrl = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    # Prepended to every exchange and queue name; tests use it to isolate runs.
    prefix: str = ""
    cover_queue: str = "video_processing"
    transcode_queue: str = "video_transcoding_queue"
    events_queue: str = "video_events"
    # Quorum-queue delivery limit: a message redelivered more often (e.g. it keeps crashing
    # workers) is dead-lettered by the broker.
    delivery_limit: int = Field(5, ge=1)
    # Backoff of transient-failure retries, one delay queue per step.
    retry_delays_ms: list[int] = Field(default_factory=lambda: [2000, 10000, 60000])
    publish_timeout: float = Field(10.0, gt=0)

    @field_validator("retry_delays_ms")
    @classmethod
    def _delays_positive(cls, value: list[int]) -> list[int]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("must be a non-empty list of positive milliseconds")
        return value


FfmpegSandbox = Literal["auto", "bwrap", "none"]


WorkerQueue = Literal["cover", "transcode"]


def _all_queues() -> list[WorkerQueue]:
    return ["cover", "transcode"]


class WorkerSettings(BaseModel):
    # Queues this process consumes (keyed by queue, not by job kind: every kind published
    # to the transcode queue follows it). Kubernetes runs one Deployment per queue so that a
    # burst of covers never scales up transcode-sized pods.
    queues: list[WorkerQueue] = Field(default_factory=_all_queues)
    cover_concurrency: int = Field(2, ge=1)
    transcode_concurrency: int = Field(1, ge=1)
    upload_concurrency: int = Field(8, ge=1)
    work_dir: Path = Path("/tmp/video-worker")
    shutdown_grace: float = Field(30.0, ge=0)
    health_host: str = "127.0.0.1"
    health_port: int = Field(8001, ge=0, le=65535)
    # Transient failures are retried this many times in total before dead-lettering.
    max_attempts: int = Field(4, ge=1)
    max_width: int = Field(7680, gt=0)
    max_height: int = Field(4320, gt=0)
    max_duration: float = Field(6 * 3600, gt=0)
    max_streams: int = Field(16, gt=0)
    # As large as the API accepts (upload.max_size), so every accepted upload is processed.
    max_source_bytes: int = Field(50 * 1024**3, gt=0)
    rungs: list[int] = Field(default_factory=lambda: [1080, 720, 480, 360, 240])
    segment_seconds: int = Field(6, ge=1)
    # Split-and-stitch: a source at least this long (seconds) is encoded as chunks of
    # chunk_seconds (a multiple of segment_seconds) by any number of workers; 0 turns it off.
    # Five minutes: below that the chunks' own costs (each downloads and probes the source)
    # weigh more than the parallelism wins back for a typical few-worker deployment.
    chunk_min_duration: float = Field(300.0, ge=0)
    chunk_seconds: int = Field(60, ge=1)
    max_fps: int = Field(60, ge=1)
    # Output rate of sparse video and of still pictures (podcast cover art): frames are
    # repeated at this rate, so every segment still starts with a keyframe.
    min_fps: float = Field(1.0, gt=0, le=30)
    # Without sound for at least half of it, a video with fewer pictures than one per this
    # many seconds on average is refused (two frames six hours apart is not a video).
    max_frame_interval: float = Field(30.0, gt=0)
    # Wall-clock limit of the packet scan that measures duration and frame rate.
    scan_timeout: float = Field(120.0, gt=0)
    x264_preset: str = "veryfast"
    cover_max_width: int = Field(1280, ge=16)
    # Wall-clock limit of one ffmpeg run: base + factor x media duration.
    ffmpeg_timeout_base: float = Field(120.0, gt=0)
    ffmpeg_timeout_factor: float = Field(10.0, gt=0)
    # Threads of each ffmpeg process (decoder, filters and encoders); 0: ffmpeg's choice,
    # about one per core for each of them.
    ffmpeg_threads: int = Field(0, ge=0)
    # Address-space cap of every ffprobe/ffmpeg process, in MiB (0: none). A 1080p five-rung
    # ladder peaks at about 1.3 GiB on 2 cores; the cap stops a crafted input from making a
    # decoder take the whole machine's memory.
    ffmpeg_max_memory_mb: int = Field(8192, ge=0)
    # Confinement of ffprobe/ffmpeg: bwrap (no network, only the job's files; start-up fails
    # if it cannot run), none (minimal environment only), auto (bwrap where it works).
    ffmpeg_sandbox: FfmpegSandbox = "auto"
    progress_interval: float = Field(1.0, gt=0)
    # CPU seconds one ladder may use: base + per gigapixel encoded or decoded + per second of
    # audio per rung (see transcode_service/budget.py). A 1080p30 five-rung ladder needs
    # about 12 s per gigapixel; the defaults leave ample room.
    cpu_budget_base: float = Field(120.0, gt=0)
    cpu_seconds_per_gigapixel: float = Field(60.0, gt=0)
    # ffmpeg 5.1's AAC encoder took 0.1-0.2 CPU s per second of stereo sound here; 0.5
    # leaves the headroom of the video's share (it alone bounds an audio-only encode).
    cpu_seconds_per_audio_second: float = Field(0.5, ge=0)
    # A ladder whose media time advances slower than min_speed x real time over a whole
    # speed_window (seconds) is stopped as stalled; min_speed 0 turns this off.
    min_speed: float = Field(0.02, ge=0)
    speed_window: float = Field(120.0, gt=0)

    @field_validator("queues")
    @classmethod
    def _queues_valid(cls, value: list[WorkerQueue]) -> list[WorkerQueue]:
        if not value:
            raise ValueError("must name at least one of cover, transcode")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _chunks_whole_segments(self) -> WorkerSettings:
        if self.chunk_seconds % self.segment_seconds:
            raise ValueError("worker.chunk_seconds must be a multiple of worker.segment_seconds")
        return self

    @field_validator("rungs")
    @classmethod
    def _rungs_valid(cls, value: list[int]) -> list[int]:
        if not value or any(h < 16 or h % 2 for h in value):
            raise ValueError("must be a non-empty list of even heights >= 16")
        return sorted(set(value), reverse=True)


class AuthSettings(BaseModel):
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    token_ttl_seconds: int = Field(24 * 3600, gt=0)
    issuer: str = "video-platform"
    # Lifetime of the video-scoped token in events_url (EventSource cannot send headers).
    events_token_ttl_seconds: int = Field(3600, gt=0)


MIB = 1024**2
S3_MIN_PART = 5 * MIB  # every part but the last
S3_MAX_PART = 5 * 1024**3
S3_MAX_PARTS = 10_000


class UploadSettings(BaseModel):
    # Above 5 GiB (the S3 single-PUT limit) only multipart uploads get through.
    max_size: int = Field(50 * 1024**3, gt=0, le=S3_MAX_PART * S3_MAX_PARTS)
    # initiate picks a multipart upload for a declared size above this (or on request).
    multipart_threshold: int = Field(64 * MIB, ge=S3_MIN_PART)
    # Part size suggested to clients; raised for big files so they fit in 10 000 parts.
    part_size: int = Field(16 * MIB, ge=S3_MIN_PART, le=S3_MAX_PART)
    # The janitor expires uploads still `uploading` after this many seconds...
    abandoned_after: int = Field(24 * 3600, gt=0)
    # ...and aborts multipart uploads with no row that are older than this (a create in
    # progress has started its S3 upload before its row records the id).
    orphan_grace: int = Field(3600, ge=0)
    # How often the API process runs the janitor (0: never; use `video-janitor` instead).
    janitor_interval: float = Field(900.0, ge=0)
    janitor_batch_size: int = Field(50, gt=0)
    allowed_extensions: list[str] = Field(
        default_factory=lambda: [
            ".mp4",
            ".m4v",
            ".mov",
            ".mkv",
            ".webm",
            ".avi",
            ".ts",
            ".mts",
            ".m2ts",
            ".flv",
            ".mpg",
            ".mpeg",
            ".ogv",
            ".ogg",
            ".3gp",
            ".mp3",
            ".m4a",
        ]
    )
    allowed_content_types: list[str] = Field(
        default_factory=lambda: [
            "video/mp4",
            "video/quicktime",
            "video/x-matroska",
            "video/webm",
            "video/x-msvideo",
            "video/avi",
            "video/mp2t",
            "video/x-flv",
            "video/mpeg",
            "video/ogg",
            "video/3gpp",
            "audio/mpeg",
            "audio/mp4",
            "application/octet-stream",
        ]
    )


class WebhookSettings(BaseModel):
    # Receivers on loopback, private, link-local or otherwise non-public addresses are refused
    # (no SSRF through webhooks) unless this is set (development, tests, internal receivers).
    allow_private: bool = False
    # Attempts per delivery, with exponential backoff (base x 2^n, capped) between them.
    max_attempts: int = Field(8, ge=1, le=50)
    backoff_base: float = Field(5.0, gt=0)
    backoff_max: float = Field(3600.0, gt=0)
    timeout: float = Field(10.0, gt=0)
    poll_interval: float = Field(1.0, gt=0)
    batch_size: int = Field(20, gt=0)
    max_endpoints_per_user: int = Field(10, ge=1)


class LimitsSettings(BaseModel):
    """Rate limits and quotas. Counters live in the database (table ``rate_limits``), so they
    hold across API replicas. Defaults suit a small public instance."""

    # Login and register attempts from one client address (argon2 costs 64 MiB each).
    auth_ip_attempts: int = Field(30, ge=1)
    auth_ip_window: int = Field(300, ge=1)
    # Login and register attempts naming one email, from anywhere.
    auth_account_attempts: int = Field(10, ge=1)
    auth_account_window: int = Field(300, ge=1)
    # Uploads a user may initiate per window.
    initiate_per_user: int = Field(50, ge=1)
    initiate_window: int = Field(3600, ge=1)
    # Videos a user may have in ``uploading`` whose upload URL has not expired yet.
    uploads_in_flight: int = Field(5, ge=1)
    # Sum of the source sizes of a user's videos that are not ``failed`` (one largest upload).
    bytes_per_user: int = Field(50 * 1024**3, ge=1)
    # Videos a user may have in ``transcoding`` at once: one user cannot fill every worker.
    transcodes_in_flight: int = Field(2, ge=1)
    # Reverse proxies in front of the API that append to X-Forwarded-For (0: use the peer
    # address). With N, the client address is the Nth entry from the right.
    trusted_proxy_hops: int = Field(0, ge=0)


class LoggingSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # None: JSON when stderr is not a TTY, coloured console otherwise.
    json_output: bool | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    s3: S3Settings = S3Settings()
    rabbitmq: RabbitMQSettings = RabbitMQSettings()
    worker: WorkerSettings = WorkerSettings()
    auth: AuthSettings = AuthSettings()
    upload: UploadSettings = UploadSettings()
    webhooks: WebhookSettings = WebhookSettings()
    limits: LimitsSettings = LimitsSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments, then the environment, then the YAML file.
        yaml_file = Path(os.environ.get(CONFIG_FILE_ENV, str(DEFAULT_CONFIG_FILE)))
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file),
        )

    def ensure_production_safe(self) -> None:
        """Refuse known, short or placeholder secrets unless explicitly in development."""
        if self.server.environment == "development":
            return
        problem = jwt_secret_problem(self.auth.jwt_secret.get_secret_value())
        if problem:
            raise SettingsError(f"invalid setting auth.jwt_secret: {problem}{_OUTSIDE_DEV}")
        self.ensure_credentials_safe()

    def ensure_credentials_safe(self) -> None:
        """The storage and broker part of ensure_production_safe (the worker has no JWT)."""
        if self.server.environment == "development":
            return
        for key in ("access_key", "secret_key"):
            value = getattr(self.s3, key).get_secret_value()
            if value in DEV_S3_KEYS or _PLACEHOLDER.search(value):
                raise SettingsError(
                    f"invalid setting s3.{key}: a development default or placeholder{_OUTSIDE_DEV}"
                )
        url = AnyUrl(self.rabbitmq.url.get_secret_value())
        login = (url.username or "", url.password or "")
        if login in DEFAULT_BROKER_LOGINS or _PLACEHOLDER.search(login[1]):
            raise SettingsError(
                f"invalid setting rabbitmq.url: default or placeholder credentials{_OUTSIDE_DEV}"
            )


_OUTSIDE_DEV = " may not be used when server.environment is not 'development'"


def jwt_secret_problem(secret: str) -> str | None:
    """Why ``secret`` cannot sign tokens outside development, or None."""
    if not secret.strip():
        return "missing"
    if secret == DEV_JWT_SECRET or _PLACEHOLDER.search(secret):
        return "a development default or placeholder"
    if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        return f"shorter than {MIN_JWT_SECRET_BYTES} bytes"
    return None


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "settings"
    return f"invalid setting {key}: {first['msg']}"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings or raise SettingsError with one line naming the offending key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
