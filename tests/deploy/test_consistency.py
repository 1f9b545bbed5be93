"""Cross-file consistency of the Kubernetes manifests with the code's settings and with each
other: env vars are real settings, queue names match, grace periods nest, probes hit ports
the containers expose, selectors select, the broker config is the same everywhere."""

from __future__ import annotations

import math
import os
import re
from typing import Any

import pytest

from shared.settings import (
    RabbitMQSettings,
    Settings,
    SettingsError,
    WorkerSettings,
    load_settings,
)
from tests.deploy.manifests import (
    DEPLOY,
    KUSTOMIZATIONS,
    OVERLAY_KUSTOMIZATIONS,
    SECRET_NAMES,
    Manifest,
    configmap_data,
    container_env,
    find,
    label,
    pod_spec,
    render,
    secret_data,
    setting_for,
)
from tests.deploy.operator_secrets import operator_values

WORKERS = {"cover": "video-worker-cover", "transcode": "video-worker-transcode"}
WORKLOADS = (("Deployment", "video-api"), *(("Deployment", name) for name in WORKERS.values()))


def all_containers(spec: Manifest) -> list[Manifest]:
    """The pod's containers, the migration initContainer first."""
    return [*spec.get("initContainers", []), *spec["containers"]]


def _worker_settings(docs: list[Manifest], name: str) -> WorkerSettings:
    env = container_env(docs, pod_spec(find(docs, "Deployment", name))["containers"][0])
    with pytest.MonkeyPatch.context() as mp:
        return _load(env, mp).worker


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_video_env_var_is_a_real_setting(kustomization: str) -> None:
    docs = render(kustomization)
    for doc in docs:
        keys: list[str] = []
        if doc["kind"] == "ConfigMap":
            keys = list(doc.get("data", {}))
        elif doc["kind"] == "Secret":
            keys = list(doc.get("stringData", {})) + list(doc.get("data", {}))
        elif doc["kind"] in ("Deployment", "Job", "StatefulSet"):
            keys = [e["name"] for c in all_containers(pod_spec(doc)) for e in c.get("env", [])]
        for key in keys:
            if key.startswith("VIDEO_"):
                assert setting_for(key) is not None, f"{label(doc)}: {key} is not a setting"


def _load(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key in [k for k in os.environ if k.startswith("VIDEO_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("VIDEO_CONFIG_FILE", "/nonexistent/config.yaml")
    for key, value in env.items():
        if key.startswith("VIDEO_"):
            monkeypatch.setenv(key, value)
    return load_settings()


@pytest.mark.parametrize("kustomization", OVERLAY_KUSTOMIZATIONS)
def test_containers_load_their_settings(
    kustomization: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(kustomization)
    for kind, name in WORKLOADS:
        for container in all_containers(pod_spec(find(docs, kind, name))):
            with monkeypatch.context() as mp:
                env = container_env(docs, container)
                settings = _load(env, mp)
                if name in WORKERS.values():
                    assert settings.worker.health_host == "0.0.0.0"
                else:
                    assert settings.server.environment == "production"
                if container["name"] == "api":
                    # The shipped secrets are examples: refused until the operator's replace
                    # them. (The migrate initContainer has no broker or storage credentials.)
                    with pytest.raises(SettingsError):
                        settings.ensure_production_safe()
                    _load(operator_values(env), mp).ensure_production_safe()


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_each_worker_deployment_consumes_only_its_queue(kustomization: str) -> None:
    docs = render(kustomization)
    for queue, name in WORKERS.items():
        assert _worker_settings(docs, name).queues == [queue]
        so = find(docs, "ScaledObject", name)["spec"]
        assert so["scaleTargetRef"]["name"] == name
        queue_name = getattr(RabbitMQSettings(), f"{queue}_queue")
        assert [t["metadata"]["queueName"] for t in so["triggers"]] == [queue_name]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_worker_gets_no_database_or_jwt_credentials(kustomization: str) -> None:
    docs = render(kustomization)
    for name in WORKERS.values():
        container = pod_spec(find(docs, "Deployment", name))["containers"][0]
        env = container_env(docs, container)
        assert not [k for k in env if k.startswith(("VIDEO_DATABASE__", "VIDEO_AUTH__"))]


def _triggers(docs: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        t["metadata"]["queueName"]: t
        for name in WORKERS.values()
        for t in find(docs, "ScaledObject", name)["spec"]["triggers"]
    }


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_scaledobject_queues_match_settings(kustomization: str) -> None:
    docs = render(kustomization)
    defaults = RabbitMQSettings()
    common = configmap_data(docs, "video-common")
    assert common.get("VIDEO_RABBITMQ__PREFIX", "") == defaults.prefix == ""
    cover = common.get("VIDEO_RABBITMQ__COVER_QUEUE", defaults.cover_queue)
    transcode = common.get("VIDEO_RABBITMQ__TRANSCODE_QUEUE", defaults.transcode_queue)
    assert (cover, transcode) == (defaults.cover_queue, defaults.transcode_queue)
    triggers = _triggers(docs)
    assert set(triggers) == {cover, transcode}
    for trigger in triggers.values():
        assert trigger["type"] == "rabbitmq"
        meta = trigger["metadata"]
        assert meta["protocol"] == "http"  # management API: ready + unacked
        assert meta["mode"] == "QueueLength"
        assert meta.get("excludeUnacknowledged", "false") == "false"
        assert int(meta["value"]) >= 1
        assert int(meta["activationValue"]) >= 0
        auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] in SECRET_NAMES
            if kustomization == "base":
                continue  # the Secret comes from an overlay
            secret = secret_data(docs, ref["name"])
            assert ref["key"] in secret
            assert ref["parameter"] == "host"
            url = re.match(r"^https?://[^:/]+:[^@]+@([^/:]+):15672/", secret[ref["key"]])
            assert url, "management URL must be http(s)://user:password@host:15672/<vhost>"
            # KEDA's operator resolves the host from its own namespace: a bare Service name
            # would point into the wrong namespace.
            assert "." in url.group(1), f"{url.group(1)!r} is not namespace-qualified"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_trigger_values_follow_worker_concurrency(kustomization: str) -> None:
    docs = render(kustomization)
    worker = configmap_data(docs, "video-worker")
    defaults = WorkerSettings()
    transcode_slots = int(
        worker.get("VIDEO_WORKER__TRANSCODE_CONCURRENCY", defaults.transcode_concurrency)
    )
    cover_slots = int(worker.get("VIDEO_WORKER__COVER_CONCURRENCY", defaults.cover_concurrency))
    triggers = _triggers(docs)
    # One worker per transcode slot's worth of waiting + running transcodes.
    assert int(triggers[RabbitMQSettings().transcode_queue]["metadata"]["value"]) == transcode_slots
    assert int(triggers[RabbitMQSettings().cover_queue]["metadata"]["value"]) % cover_slots == 0


def test_queue_depth_arithmetic_documented_in_readme() -> None:
    # desired = ceil(messages / value), clamped to [min, max], per Deployment.
    docs = render("overlays/prod")

    def desired(name: str, messages: int) -> int:
        so = find(docs, "ScaledObject", name)["spec"]
        (trigger,) = so["triggers"]
        wanted = math.ceil(messages / int(trigger["metadata"]["value"]))
        return min(max(wanted, int(so["minReplicaCount"])), int(so["maxReplicaCount"]))

    assert desired("video-worker-transcode", 0) == 2
    assert desired("video-worker-transcode", 7) == 7
    assert desired("video-worker-transcode", 500) == 50
    # A burst of covers scales only the small cover pods.
    assert desired("video-worker-cover", 45) == 5
    assert desired("video-worker-cover", 1000) == 20
    readme = (DEPLOY / "README.md").read_text()
    assert "ceil((ready + unacked) / value)" in readme


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_scale_targets_exist(kustomization: str) -> None:
    docs = render(kustomization)
    hpa = find(docs, "HorizontalPodAutoscaler", "video-api")["spec"]["scaleTargetRef"]
    refs = [hpa]
    for name in WORKERS.values():
        spec = find(docs, "ScaledObject", name)["spec"]
        refs.append(spec["scaleTargetRef"])
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300
    for ref in refs:
        find(docs, ref.get("kind", "Deployment"), ref["name"])


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_worker_termination_grace_exceeds_shutdown_grace(kustomization: str) -> None:
    docs = render(kustomization)
    for name in WORKERS.values():
        spec = pod_spec(find(docs, "Deployment", name))
        grace = _worker_settings(docs, name).shutdown_grace
        # The documented margin: shutdown grace + 60 s to requeue, publish and disconnect.
        assert spec["terminationGracePeriodSeconds"] == grace + 60, name


# Moving a source of up to worker.max_source_bytes in and the renditions out, on top of the
# worker's own time limits (deploy/README.md, "Scale-in").
TRANSFER_SECONDS = 1800


def longest_transcode(worker: WorkerSettings) -> float:
    """The longest a transcode may run before the worker's own limits fail it: the packet
    scan, then one ffmpeg ladder bounded by base + factor x duration, plus transfers."""
    ladder = worker.ffmpeg_timeout_base + worker.ffmpeg_timeout_factor * worker.max_duration
    return worker.scan_timeout + ladder + TRANSFER_SECONDS


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_scale_in_never_cuts_a_transcode_short(kustomization: str) -> None:
    """SIGTERM -> stop consuming -> the held transcode gets shutdown_grace to finish; that is
    at least the longest transcode the worker's limits allow, so a scale-in, a rollout or a
    drain lets it end instead of cancelling and restarting it."""
    docs = render(kustomization)
    worker = _worker_settings(docs, WORKERS["transcode"])
    assert worker.shutdown_grace >= longest_transcode(worker)
    # ...and not absurdly above it: the grace a node drain may have to wait for.
    assert worker.shutdown_grace <= longest_transcode(worker) + 600
    assert worker.transcode_concurrency == 1  # prefetch 1: no second job waits in the pod
    readme = (DEPLOY / "README.md").read_text()
    assert f"{longest_transcode(worker):.0f} s" in readme


def _ports(container: Manifest) -> dict[str | int, int]:
    ports: dict[str | int, int] = {}
    for port in container.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if "name" in port:
            ports[port["name"]] = port["containerPort"]
    return ports


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_probes_hit_exposed_ports(kustomization: str) -> None:
    docs = render(kustomization)
    expected = {
        "video-api": "VIDEO_SERVER__PORT",
        **dict.fromkeys(WORKERS.values(), "VIDEO_WORKER__HEALTH_PORT"),
    }
    for name, port_setting in expected.items():
        container = pod_spec(find(docs, "Deployment", name))["containers"][0]
        ports = _ports(container)
        listen = int(container_env(docs, container)[port_setting])
        probes = [container[p] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        for probe in probes:
            assert ports[probe["httpGet"]["port"]] == listen, (name, probe)
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_selectors_select_their_pods(kustomization: str) -> None:
    docs = render(kustomization)
    for doc in docs:
        if doc["kind"] == "Service":
            selector = doc["spec"]["selector"]
        elif doc["kind"] == "PodDisruptionBudget":
            selector = doc["spec"]["selector"]["matchLabels"]
        else:
            continue
        pods = [
            d
            for d in docs
            if d["kind"] in ("Deployment", "StatefulSet")
            and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(pods) == 1, f"{label(doc)} selects {len(pods)} workloads"
        if doc["kind"] == "Service":
            ports = _ports(pod_spec(pods[0])["containers"][0])
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in ports, (label(doc), port)
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            match = doc["spec"]["selector"]["matchLabels"]
            assert match.items() <= doc["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_ingress_routes_to_the_api_service(kustomization: str) -> None:
    docs = render(kustomization)
    ingress = find(docs, "Ingress", "video-api")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = find(docs, "Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_base_has_no_secrets_only_references_to_the_documented_names() -> None:
    docs = render("base")
    assert not [d for d in docs if d["kind"] == "Secret"]
    refs = {
        source["secretRef"]["name"]
        for kind, name in WORKLOADS
        for container in all_containers(pod_spec(find(docs, kind, name)))
        for source in container.get("envFrom", [])
        if "secretRef" in source
    }
    assert refs == set(SECRET_NAMES) - {"video-keda-rabbitmq"}


@pytest.mark.parametrize("kustomization", OVERLAY_KUSTOMIZATIONS)
def test_secrets_are_generated_and_referenced_by_their_hashed_names(kustomization: str) -> None:
    """A changed secret file gives a new Secret name, so the workloads that read it roll."""
    docs = render(kustomization)
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert "video-keda-rabbitmq" in secrets  # fixed: KEDA's references are not rewritten
    for base_name in set(SECRET_NAMES) - {"video-keda-rabbitmq"}:
        hashed = [s for s in secrets if re.fullmatch(rf"{base_name}-[a-z0-9]{{10}}", s)]
        assert len(hashed) == 1, (base_name, secrets)
    for kind, name in WORKLOADS:
        for container in all_containers(pod_spec(find(docs, kind, name))):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_workloads_read_generated_configmaps(kustomization: str) -> None:
    """Hashed ConfigMap names: a settings change gives new names, so the pods roll."""
    docs = render(kustomization)
    for kind, name in WORKLOADS:
        for container in all_containers(pod_spec(find(docs, kind, name))):
            refs = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
            assert refs
            for ref in refs:
                assert re.fullmatch(r"video-(common|api|worker)-[a-z0-9]{10}", ref), ref


def test_prod_api_and_workers_use_different_rabbitmq_users() -> None:
    docs = render("overlays/prod")
    users = {}
    for name in ("video-api", *WORKERS.values()):
        container = pod_spec(find(docs, "Deployment", name))["containers"][0]
        url = container_env(docs, container)["VIDEO_RABBITMQ__URL"]
        users[name] = re.match(r"^amqps?://([^:@/]+)", url).group(1)  # type: ignore[union-attr]
    assert users["video-api"] not in {users[n] for n in WORKERS.values()}, users


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_ingress_does_not_expose_metrics_or_probes(kustomization: str) -> None:
    ingress = find(render(kustomization), "Ingress", "video-api")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths
    for internal in ("/metrics", "/healthz", "/readyz"):
        for path in paths:
            assert not internal.startswith(path["path"].rstrip("/") + "/"), (internal, path)
            assert internal != path["path"].rstrip("/"), (internal, path)
    assert any("/api/v1/videos".startswith(p["path"]) for p in paths)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_api_prestop_fits_in_the_grace_period(kustomization: str) -> None:
    docs = render(kustomization)
    spec = pod_spec(find(docs, "Deployment", "video-api"))
    container = spec["containers"][0]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    shutdown = float(container_env(docs, container).get("VIDEO_SERVER__SHUTDOWN_TIMEOUT", "10"))
    assert float(command[1]) + shutdown < spec["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_network_policies_select_the_workloads_and_name_real_ports(kustomization: str) -> None:
    docs = render(kustomization)
    for policy_name, name in (
        ("video-api", "video-api"),
        *(("video-worker", w) for w in WORKERS.values()),
    ):
        policy = find(docs, "NetworkPolicy", policy_name)
        template = find(docs, "Deployment", name)["spec"]["template"]
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        for rule in policy["spec"]["ingress"]:
            assert {p["port"] for p in rule["ports"]} <= ports


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
@pytest.mark.parametrize("name", WORKERS.values())
def test_worker_scratch_is_a_bounded_emptydir_at_the_work_dir(
    kustomization: str, name: str
) -> None:
    docs = render(kustomization)
    spec = pod_spec(find(docs, "Deployment", name))
    container = spec["containers"][0]
    work_dir = container_env(docs, container)["VIDEO_WORKER__WORK_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = {v["name"]: v for v in spec["volumes"]}[mounts[work_dir]]
    if kustomization == "overlays/prod":
        # A per-pod volume (generic ephemeral volume), not the node's root disk.
        assert "emptyDir" not in volume
        claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
        assert claim["resources"]["requests"]["storage"]
    else:
        assert volume["emptyDir"]["sizeLimit"]
    assert container["resources"]["limits"]["ephemeral-storage"]
    # Requests a common node root disk (often 50-100 GiB, shared by every pod) can hold.
    request = container["resources"]["requests"]["ephemeral-storage"]
    assert request.endswith("Gi") and int(request[:-2]) <= 12, request


def _consumer_timeout(text: str) -> int:
    match = re.search(r"^\s*consumer_timeout\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    assert match, "consumer_timeout not set"
    return int(match.group(1))


def test_rabbitmq_consumer_timeout_is_consistent_and_long() -> None:
    compose_conf = _consumer_timeout((DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text())
    dev = configmap_data(render("overlays/dev"), "rabbitmq-config")
    k8s_conf = _consumer_timeout(dev["90-video-platform.conf"])
    assert compose_conf == k8s_conf == 13 * 3600 * 1000
    # Above the longest transcode drain (so a drained job is never redelivered under it).
    for kustomization in KUSTOMIZATIONS:
        docs = render(kustomization)
        spec = pod_spec(find(docs, "Deployment", WORKERS["transcode"]))
        assert compose_conf / 1000 > spec["terminationGracePeriodSeconds"]
    assert compose_conf / 1000 > WorkerSettings().shutdown_grace
    readme = (DEPLOY / "README.md").read_text()
    assert f"consumer_timeout = {compose_conf}" in readme


def test_readme_numbers_match_manifests() -> None:
    readme = (DEPLOY / "README.md").read_text()
    docs = render("base")
    so = find(docs, "ScaledObject", WORKERS["transcode"])["spec"]
    scale_down = so["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    facts = []
    for name in WORKERS.values():
        spec = pod_spec(find(docs, "Deployment", name))
        grace = _worker_settings(docs, name).shutdown_grace
        facts += [
            f"terminationGracePeriodSeconds: {spec['terminationGracePeriodSeconds']}",
            f"VIDEO_WORKER__SHUTDOWN_GRACE={grace:.0f}",
        ]
    facts += [
        f"stabilizationWindowSeconds: {scale_down['stabilizationWindowSeconds']}",
        "kubectl apply -k deploy/k8s/overlays/prod",
        "VIDEO_WORKER__HEALTH_PORT=8002",
    ]
    for fact in facts:
        assert fact in readme, fact


def test_every_setting_named_in_docs_exists() -> None:
    for path in (
        DEPLOY / "README.md",
        DEPLOY / "compose.yaml",
        DEPLOY / "rabbitmq" / "rabbitmq.conf",
    ):
        for name in set(re.findall(r"\bVIDEO_[A-Z0-9]+__[A-Z0-9_]+\b", path.read_text())):
            assert setting_for(name) is not None, f"{path.name}: {name} is not a setting"
