"""Every rendered Kubernetes object is valid: core kinds against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict: unknown fields fail), KEDA kinds against the CRD
schemas in deploy/schemas/keda. The broken-manifest cases prove the validators bite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy.manifests import (
    KUSTOMIZATIONS,
    SECRET_NAMES,
    Manifest,
    ManifestInvalid,
    find,
    generated_name,
    label,
    pod_spec,
    render,
    validate_any,
)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_rendered_object_validates(kustomization: str) -> None:
    docs = render(kustomization)
    assert docs
    for doc in docs:
        validate_any(doc)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_expected_objects_present(kustomization: str) -> None:
    kinds = {generated_name(doc) for doc in render(kustomization)}
    if kustomization != "base":
        expected_secrets = {f"Secret/{name}" for name in SECRET_NAMES}
        assert expected_secrets <= kinds, expected_secrets - kinds
    expected = {
        "Namespace/video-platform" if kustomization != "overlays/dev" else "Namespace/video-dev",
        "ConfigMap/video-common",
        "ConfigMap/video-api",
        "ConfigMap/video-worker",
        "Deployment/video-api",
        "Service/video-api",
        "Ingress/video-api",
        "NetworkPolicy/video-api",
        "NetworkPolicy/video-worker",
        "HorizontalPodAutoscaler/video-api",
        "PodDisruptionBudget/video-api",
        "Deployment/video-worker-cover",
        "Deployment/video-worker-transcode",
        "PodDisruptionBudget/video-worker-cover",
        "PodDisruptionBudget/video-worker-transcode",
        "ScaledObject/video-worker-cover",
        "ScaledObject/video-worker-transcode",
        "TriggerAuthentication/video-rabbitmq-management",
    }
    assert expected <= kinds, expected - kinds
    # Migrations run as the API pods' initContainer: no fixed-name Job to collide with.
    assert "Job/video-migrate" not in kinds


def test_overlays_set_namespace_and_images() -> None:
    for overlay, namespace, api_image in (
        ("overlays/dev", "video-dev", "video-platform/api:dev"),
        ("overlays/prod", "video-platform", "registry.example.com/video-platform/api:0.1.0"),
    ):
        docs = render(overlay)
        for doc in docs:
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["namespace"] == namespace, label(doc)
        api = pod_spec(find(docs, "Deployment", "video-api"))
        assert api["containers"][0]["image"] == api_image
        assert [c["image"] for c in api["initContainers"]] == [api_image]


def test_prod_overlay_patches_apply() -> None:
    docs = render("overlays/prod")
    worker = pod_spec(find(docs, "Deployment", "video-worker-transcode"))
    assert worker["containers"][0]["resources"]["limits"]["cpu"] == "8"
    # Strategic merge kept the base's other container fields and volumes.
    assert worker["containers"][0]["livenessProbe"]["httpGet"]["port"] == "health"
    assert {v["name"] for v in worker["volumes"]} == {"scratch", "tmp"}
    so = find(docs, "ScaledObject", "video-worker-transcode")
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 50)
    assert len(so["spec"]["triggers"]) == 1
    ingress = find(docs, "Ingress", "video-api")
    assert ingress["spec"]["tls"][0]["hosts"] == ["video.example.com"]
    assert ingress["spec"]["rules"][0]["host"] == "video.example.com"


def test_autoscaled_workloads_leave_replicas_to_the_autoscaler() -> None:
    # spec.replicas in an HPA/KEDA-managed Deployment resets the scale on every apply.
    for overlay in KUSTOMIZATIONS:
        docs = render(overlay)
        for name in ("video-api", "video-worker-cover", "video-worker-transcode"):
            assert "replicas" not in find(docs, "Deployment", name)["spec"]


def test_pods_run_as_non_root_with_read_only_root() -> None:
    for overlay in KUSTOMIZATIONS:
        docs = render(overlay)
        for kind, name in (
            ("Deployment", "video-api"),
            ("Deployment", "video-worker-cover"),
            ("Deployment", "video-worker-transcode"),
        ):
            spec = pod_spec(find(docs, kind, name))
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["automountServiceAccountToken"] is False
            for container in spec["containers"] + spec.get("initContainers", []):
                ctx = container["securityContext"]
                assert ctx["readOnlyRootFilesystem"] is True
                assert ctx["allowPrivilegeEscalation"] is False
                assert ctx["capabilities"]["drop"] == ["ALL"]
                assert container["resources"]["requests"]
                assert container["resources"]["limits"]


# --- the validators bite ------------------------------------------------------------------


def _rename(fields: dict[str, Any], old: str, new: str) -> None:
    fields[new] = fields.pop(old)


# The objects broken below, as (kustomization, kind, name).
TRANSCODE_WORKER = ("overlays/prod", "Deployment", "video-worker-transcode")
TRANSCODE_SCALER = ("overlays/prod", "ScaledObject", "video-worker-transcode")
RABBITMQ_AUTH = ("base", "TriggerAuthentication", "video-rabbitmq-management")

# (object, how it is broken, the error expected)
BROKEN = [
    pytest.param(
        TRANSCODE_WORKER, lambda d: d["spec"].update(replicas="two"),
        r"spec\.replicas: 'two' is not of type 'integer'", id="deployment-replicas-string",
    ),
    pytest.param(
        TRANSCODE_WORKER, lambda d: pod_spec(d).pop("containers"),
        r"'containers' is a required property", id="deployment-without-containers",
    ),
    pytest.param(
        # A typo kubectl would reject: the strict schema must too.
        TRANSCODE_WORKER,
        lambda d: _rename(pod_spec(d)["containers"][0], "livenessProbe", "livenessprobe"),
        r"'livenessprobe' was unexpected", id="deployment-unknown-field",
    ),
    pytest.param(
        TRANSCODE_SCALER, lambda d: d["spec"]["triggers"][0].pop("type"),
        r"spec\.triggers\.0: 'type' is a required property", id="scaledobject-trigger-type",
    ),
    pytest.param(
        # The value must be the string "1".
        TRANSCODE_SCALER, lambda d: d["spec"]["triggers"][0]["metadata"].update(value=1),
        r"metadata\.value: 1 is not of type 'string'", id="scaledobject-metadata-number",
    ),
    pytest.param(
        # The HPA's spelling, wrong in a ScaledObject.
        TRANSCODE_SCALER, lambda d: _rename(d["spec"], "maxReplicaCount", "maxReplicas"),
        r"'maxReplicas' was unexpected", id="scaledobject-unknown-field",
    ),
    pytest.param(
        RABBITMQ_AUTH, lambda d: d["spec"]["secretTargetRef"][0].pop("key"),
        r"'key' is a required property", id="triggerauthentication-without-key",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("target", "corrupt", "error"), BROKEN)
def test_broken_object_fails_validation(
    target: tuple[str, str, str], corrupt: Callable[[Manifest], object], error: str
) -> None:
    kustomization, kind, name = target
    manifest = find(render(kustomization), kind, name)
    corrupt(manifest)
    with pytest.raises(ManifestInvalid, match=error):
        validate_any(manifest)
