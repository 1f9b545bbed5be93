"""deploy/compose.yaml against the compose specification schema, plus the stack's wiring."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

from tests.deploy.manifests import (
    DEPLOY,
    ManifestInvalid,
    interpolate_compose,
    load_compose,
    setting_for,
    validate_compose,
)
from tests.deploy.operator_secrets import operator_values


def test_compose_file_validates() -> None:
    validate_compose(load_compose())


def test_broken_compose_unknown_top_level_key_fails() -> None:
    doc = load_compose()
    doc["service"] = doc["services"]  # a classic typo
    with pytest.raises(ManifestInvalid, match=r"'service' does not match any of the regexes"):
        validate_compose(doc)


def test_broken_compose_bad_depends_on_condition_fails() -> None:
    doc = load_compose()
    doc["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    with pytest.raises(ManifestInvalid, match=r"condition: .service_finished. is not one of"):
        validate_compose(doc)


def _services() -> dict[str, Any]:
    services = load_compose()["services"]
    assert isinstance(services, dict)
    return services


def test_stack_services_and_dependencies() -> None:
    services = _services()
    assert services["mysql"]["image"] == "mysql:8.4"
    assert services["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert services["seaweedfs"]["build"]["dockerfile"] == "deploy/seaweedfs.Dockerfile"
    assert services["createbuckets"]["image"] == services["seaweedfs"]["image"]
    for name in ("mysql", "rabbitmq", "seaweedfs"):
        assert services[name]["healthcheck"]["test"], name
    conditions = {
        name: {dep: spec["condition"] for dep, spec in svc.get("depends_on", {}).items()}
        for name, svc in services.items()
    }
    assert conditions["createbuckets"] == {"seaweedfs": "service_healthy"}
    assert conditions["migrate"] == {"mysql": "service_healthy"}
    assert conditions["api"] == {
        "migrate": "service_completed_successfully",
        "rabbitmq": "service_healthy",
        "createbuckets": "service_completed_successfully",
    }
    assert conditions["worker"] == {
        "rabbitmq": "service_healthy",
        "createbuckets": "service_completed_successfully",
    }
    assert services["worker"]["deploy"]["replicas"] == 2
    for one_shot in ("createbuckets", "migrate"):
        assert services[one_shot]["restart"] == "no"


def test_rabbitmq_gets_the_consumer_timeout_config() -> None:
    mounts = _services()["rabbitmq"]["volumes"]
    assert "./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/90-video-platform.conf:ro" in mounts


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"use plain seconds like '330s', got {duration!r}"
    return float(match.group(1))


def test_worker_stop_grace_period_covers_shutdown_grace() -> None:
    worker = _services()["worker"]
    grace = float(worker["environment"]["VIDEO_WORKER__SHUTDOWN_GRACE"])
    assert _seconds(worker["stop_grace_period"]) >= grace + 15


def test_every_video_env_var_is_a_real_setting() -> None:
    for name, service in _services().items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key in env:
            if key.startswith("VIDEO_"):
                assert setting_for(key) is not None, f"{name}: {key} is not a setting"


def test_app_services_load_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import SettingsError, load_settings

    services = _services()
    for name in ("migrate", "api", "worker"):
        env = {k: interpolate_compose(str(v)) for k, v in services[name]["environment"].items()}
        for key in [k for k in os.environ if k.startswith("VIDEO_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("VIDEO_CONFIG_FILE", "/nonexistent/config.yaml")
        if name == "api":
            # With the operator's secrets the API starts; the fallback JWT secret written in
            # this file is public, so it is refused. (migrate has no broker or S3 to check.)
            for key, value in operator_values(env).items():
                monkeypatch.setenv(key, value)
            load_settings().ensure_production_safe()
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        if name == "api":
            with pytest.raises(SettingsError, match="jwt_secret"):
                settings.ensure_production_safe()
        if name != "worker":
            assert settings.server.host == "0.0.0.0"
        assert settings.s3.presign_endpoint == "http://localhost:8333"
        assert settings.s3.endpoint_url.host == "seaweedfs"


def test_images_exist_or_are_built_here() -> None:
    """Every service either builds from this repository or names an image that registries
    still serve; the minio/minio and minio/mc images are gone from Docker Hub."""
    for name, service in _services().items():
        image = service.get("image", "")
        assert "minio" not in image, name
        if not image.startswith("video-platform/"):
            assert image in {"mysql:8.4", "rabbitmq:3.13-management"}, f"{name}: {image}"


def test_s3_credentials_match_the_seaweedfs_identity() -> None:
    identities = json.loads((DEPLOY / "seaweedfs" / "s3.json").read_text())["identities"]
    keys = {(c["accessKey"], c["secretKey"]) for i in identities for c in i["credentials"]}
    env = _services()["api"]["environment"]
    pair = (
        interpolate_compose(env["VIDEO_S3__ACCESS_KEY"]),
        interpolate_compose(env["VIDEO_S3__SECRET_KEY"]),
    )
    assert pair in keys


def test_env_example_names_every_variable_compose_reads() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)[:}]", text))
    example = {
        line.split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used == example


def test_worker_has_no_database_credentials() -> None:
    env = _services()["worker"]["environment"]
    assert not [k for k in env if k.startswith(("VIDEO_DATABASE__", "VIDEO_AUTH__"))]
