"""Settings precedence (default < YAML < environment) and start-up validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import (
    CONFIG_FILE_ENV,
    DEV_JWT_SECRET,
    SettingsError,
    load_settings,
)


@pytest.fixture
def yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "worker:\n  transcode_concurrency: 3\n  cover_concurrency: 4\n"
        "rabbitmq:\n  transcode_queue: from_yaml\n"
    )
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))
    for name in ("VIDEO_WORKER__TRANSCODE_CONCURRENCY", "VIDEO_WORKER__COVER_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_yaml_overrides_default(yaml_file: Path) -> None:
    settings = load_settings()
    assert settings.worker.transcode_concurrency == 3
    assert settings.rabbitmq.transcode_queue == "from_yaml"
    # Untouched keys keep their defaults, also inside a section the file mentions.
    assert settings.worker.upload_concurrency == 8
    assert settings.rabbitmq.cover_queue == "video_processing"


def test_env_overrides_yaml(yaml_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_WORKER__TRANSCODE_CONCURRENCY", "5")
    settings = load_settings()
    assert settings.worker.transcode_concurrency == 5
    assert settings.worker.cover_concurrency == 4  # still from the file


def test_missing_yaml_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.yaml"))
    settings = load_settings()
    assert settings.rabbitmq.transcode_queue == "video_transcoding_queue"
    assert settings.server.port == 8000


@pytest.mark.parametrize(
    ("env", "value", "key"),
    [
        ("VIDEO_S3__ENDPOINT_URL", "not a url", "s3.endpoint_url"),
        ("VIDEO_DATABASE__URL", "::::", "database.url"),
        ("VIDEO_SERVER__PORT", "eighty", "server.port"),
        ("VIDEO_WORKER__RUNGS", "[721]", "worker.rungs"),
    ],
)
def test_invalid_setting_is_one_line_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, key: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"invalid setting {key}:")
    assert "\n" not in message


def test_invalid_yaml_value_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rabbitmq:\n  delivery_limit: 0\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))
    with pytest.raises(SettingsError, match=r"^invalid setting rabbitmq\.delivery_limit:"):
        load_settings()


def test_unknown_key_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("wokrer:\n  cover_concurrency: 2\n")
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))
    with pytest.raises(SettingsError, match="wokrer"):
        load_settings()


def test_secrets_are_not_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_RABBITMQ__URL", "amqp://user:hunter2pass@broker:5672/")
    monkeypatch.setenv("VIDEO_S3__SECRET_KEY", "s3-very-secret")
    settings = load_settings()
    rendered = repr(settings) + str(settings) + settings.model_dump_json()
    assert "hunter2pass" not in rendered
    assert "s3-very-secret" not in rendered
    assert settings.rabbitmq.url.get_secret_value().endswith("@broker:5672/")


def test_production_refuses_development_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_SERVER__ENVIRONMENT", "production")
    monkeypatch.delenv("VIDEO_AUTH__JWT_SECRET", raising=False)
    settings = load_settings()
    assert settings.auth.jwt_secret.get_secret_value() == DEV_JWT_SECRET
    with pytest.raises(SettingsError, match=r"^invalid setting auth\.jwt_secret:"):
        settings.ensure_production_safe()
    monkeypatch.setenv("VIDEO_AUTH__JWT_SECRET", "a-real-secret-of-enough-length-0123456789")
    # The S3 and broker credentials must not be the development ones either
    # (tests/unit/test_secrets.py has every rule).
    monkeypatch.setenv("VIDEO_S3__ACCESS_KEY", "prod-access-7f3a")
    monkeypatch.setenv("VIDEO_S3__SECRET_KEY", "prod-secret-9c1e5b")
    monkeypatch.setenv("VIDEO_RABBITMQ__URL", "amqp://video:s3cr3t-9c1e@broker:5672/")
    load_settings().ensure_production_safe()


def test_worker_queues_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_WORKER__QUEUES", '["transcode", "transcode"]')
    assert load_settings().worker.queues == ["transcode"]
    monkeypatch.delenv("VIDEO_WORKER__QUEUES")
    assert load_settings().worker.queues == ["cover", "transcode"]


@pytest.mark.parametrize("value", ["[]", '["chunk"]', '"cover"'])
def test_worker_queues_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("VIDEO_WORKER__QUEUES", value)
    with pytest.raises(SettingsError, match=r"^invalid setting worker\.queues"):
        load_settings()
