"""Start-up refuses weak secrets and default credentials outside an explicit development."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import DEV_JWT_SECRET, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
GOOD = {
    "VIDEO_SERVER__ENVIRONMENT": "production",
    "VIDEO_AUTH__JWT_SECRET": "9f2c4e1a7b3d5f60a8c2e4b6d8f0a1c3e5b7d9f1",
    "VIDEO_S3__ACCESS_KEY": "prod-access-7f3a",
    "VIDEO_S3__SECRET_KEY": "prod-secret-9c1e5b",
    "VIDEO_RABBITMQ__URL": "amqp://video:s3cr3t-9c1e@broker:5672/",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in [k for k in os.environ if k.startswith("VIDEO_")]:
        monkeypatch.delenv(key)
    # No YAML file, as in the container images: only defaults and the environment.
    monkeypatch.setenv("VIDEO_CONFIG_FILE", "/nonexistent/config.yaml")
    for key, value in GOOD.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_good_production_settings_pass(env: pytest.MonkeyPatch) -> None:
    load_settings().ensure_production_safe()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("VIDEO_AUTH__JWT_SECRET", "", r"auth\.jwt_secret: missing"),
        ("VIDEO_AUTH__JWT_SECRET", "0123456789abcdef0123456789abcde", r"shorter than 32 bytes"),
        ("VIDEO_AUTH__JWT_SECRET", DEV_JWT_SECRET, r"auth\.jwt_secret: a development default"),
        # The Kubernetes base manifest's and the compose file's shipped values.
        ("VIDEO_AUTH__JWT_SECRET", "CHANGE-ME-generate-with-openssl-rand-hex-32", "placeholder"),
        ("VIDEO_AUTH__JWT_SECRET", "compose-local-only-jwt-secret-5e1f0b7c2a9d", "placeholder"),
        ("VIDEO_S3__ACCESS_KEY", "video-dev-access", r"s3\.access_key"),
        ("VIDEO_S3__SECRET_KEY", "video-dev-secret-key", r"s3\.secret_key"),
        ("VIDEO_S3__SECRET_KEY", "minioadmin", r"s3\.secret_key"),
        ("VIDEO_S3__SECRET_KEY", "CHANGE-ME", r"s3\.secret_key"),
        ("VIDEO_RABBITMQ__URL", "amqp://guest:guest@127.0.0.1:5672/", r"rabbitmq\.url"),
        ("VIDEO_RABBITMQ__URL", "amqp://video:CHANGE-ME@rabbitmq:5672/", r"rabbitmq\.url"),
    ],
)
def test_weak_values_are_refused_outside_development(
    env: pytest.MonkeyPatch, key: str, value: str, message: str
) -> None:
    env.setenv(key, value)
    settings = load_settings()
    with pytest.raises(SettingsError, match=message):
        settings.ensure_production_safe()
    # An explicit development environment accepts them (make run's configs/config.yaml).
    env.setenv("VIDEO_SERVER__ENVIRONMENT", "development")
    load_settings().ensure_production_safe()


def test_environment_defaults_to_production(env: pytest.MonkeyPatch) -> None:
    env.delenv("VIDEO_SERVER__ENVIRONMENT")
    env.delenv("VIDEO_AUTH__JWT_SECRET")
    settings = load_settings()
    assert settings.server.environment == "production"
    with pytest.raises(SettingsError, match=r"auth\.jwt_secret"):
        settings.ensure_production_safe()


def test_worker_checks_its_credentials(env: pytest.MonkeyPatch) -> None:
    env.setenv("VIDEO_RABBITMQ__URL", "amqp://guest:guest@127.0.0.1:5672/")
    env.setenv("VIDEO_AUTH__JWT_SECRET", "short")  # the worker has no JWT secret to check
    with pytest.raises(SettingsError, match=r"rabbitmq\.url"):
        load_settings().ensure_credentials_safe()


@pytest.mark.parametrize("script", ["video-api", "video-worker"])
def test_placeholder_secret_stops_start_up_with_one_line(
    env: pytest.MonkeyPatch, script: str
) -> None:
    env.setenv("VIDEO_AUTH__JWT_SECRET", "CHANGE-ME-generate-with-openssl-rand-hex-32")
    env.setenv("VIDEO_S3__SECRET_KEY", "CHANGE-ME")
    result = subprocess.run(
        [str(Path(sys.executable).parent / script)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ),
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    expected = "auth.jwt_secret" if script == "video-api" else "s3.secret_key"
    assert lines[0].startswith(f"invalid setting {expected}: "), lines[0]
    assert "CHANGE-ME" not in lines[0]  # the value itself is never printed
    assert result.stdout == ""
