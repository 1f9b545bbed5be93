"""Every rendered Kubernetes object is valid: core kinds against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict: unknown fields fail), KEDA kinds against the CRD
schemas in deploy/schemas/keda. The broken-manifest cases prove the validators bite."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    KUSTOMIZATIONS,
    SECRET_NAMES,
    ManifestInvalid,
    find,
    generated_name,
    label,
    pod_spec,
    render,
    validate_any,
    validate_k8s,
    validate_keda,
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


def test_broken_deployment_replicas_string_fails() -> None:
    worker = find(render("overlays/prod"), "Deployment", "video-worker-transcode")
    worker["spec"]["replicas"] = "two"
    with pytest.raises(ManifestInvalid, match=r"spec\.replicas: 'two' is not of type 'integer'"):
        validate_k8s(worker)


def test_broken_deployment_without_containers_fails() -> None:
    worker = find(render("overlays/prod"), "Deployment", "video-worker-transcode")
    del pod_spec(worker)["containers"]
    with pytest.raises(ManifestInvalid, match=r"'containers' is a required property"):
        validate_k8s(worker)


def test_broken_deployment_unknown_field_fails_in_strict_mode() -> None:
    worker = find(render("overlays/prod"), "Deployment", "video-worker-transcode")
    container = pod_spec(worker)["containers"][0]
    container["livenessprobe"] = container.pop("livenessProbe")  # a typo kubectl would reject
    with pytest.raises(ManifestInvalid, match=r"'livenessprobe' was unexpected"):
        validate_k8s(worker)


def test_broken_scaledobject_trigger_without_type_fails() -> None:
    so = find(render("overlays/prod"), "ScaledObject", "video-worker-transcode")
    del so["spec"]["triggers"][0]["type"]
    with pytest.raises(ManifestInvalid, match=r"spec\.triggers\.0: 'type' is a required property"):
        validate_keda(so)


def test_broken_scaledobject_metadata_number_fails() -> None:
    so = find(render("overlays/prod"), "ScaledObject", "video-worker-transcode")
    so["spec"]["triggers"][0]["metadata"]["value"] = 1  # must be the string "1"
    with pytest.raises(ManifestInvalid, match=r"metadata\.value: 1 is not of type 'string'"):
        validate_keda(so)


def test_broken_scaledobject_unknown_field_fails() -> None:
    so = find(render("overlays/prod"), "ScaledObject", "video-worker-transcode")
    so["spec"]["maxReplicas"] = so["spec"].pop("maxReplicaCount")  # HPA spelling, wrong here
    with pytest.raises(ManifestInvalid, match=r"'maxReplicas' was unexpected"):
        validate_keda(so)


def test_broken_triggerauthentication_fails() -> None:
    auth = find(render("base"), "TriggerAuthentication", "video-rabbitmq-management")
    del auth["spec"]["secretTargetRef"][0]["key"]
    with pytest.raises(ManifestInvalid, match=r"'key' is a required property"):
        validate_keda(auth)
