"""A small, honest kustomize renderer for the manifests under deploy/k8s.

There is no kustomize binary in CI, so the tests build the overlays in-process. This module
implements exactly the kustomization features the repository uses, and refuses everything
else loudly instead of silently rendering something different from ``kubectl kustomize``:

- ``resources``: YAML files (one or more documents) and directories holding a
  kustomization (built recursively, as kustomize does for a base);
- ``namespace``: set on every namespaced object; a ``Namespace`` object is renamed to it;
- ``labels`` with ``pairs`` (``includeSelectors``/``includeTemplates`` false only): added to
  ``metadata.labels`` of every object;
- ``images``: ``name`` with ``newName``/``newTag``/``digest`` for containers and
  init containers of pod templates (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod,
  CronJob);
- ``patches`` with ``path`` only: a strategic-merge patch of a whole document, matched by
  apiVersion group, kind and name. Maps merge recursively, ``null`` deletes a key, lists of
  built-in kinds merge by their Kubernetes merge key (containers by name, volumeMounts by
  mountPath, ...), every other list (and every list of a custom resource, as kustomize does
  for kinds it has no schema for) is replaced.

The transformers run in kustomize's order: patches, namespace, labels, images.
``tests/deploy/test_kustomize_renderer.py`` compares the output with ``kubectl kustomize``
whenever kubectl is installed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ClusterTriggerAuthentication",
    }
)
# Built-in API groups: lists of these kinds merge by Kubernetes patch merge keys.
BUILTIN_GROUPS = frozenset(
    {"", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io"}
)
# field name -> merge key, from the Kubernetes API types' patchMergeKey tags.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
    "hostAliases": "ip",
}
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not implement, or is wrong."""


def load_documents(path: Path) -> list[Manifest]:
    """Every non-empty YAML document of a file; each must be a mapping."""
    docs: list[Manifest] = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise KustomizeError(f"{path}: a document is not a mapping")
        docs.append(doc)
    return docs


def _kustomization_file(directory: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    raise KustomizeError(f"{directory}: no kustomization file")


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def _ident(doc: Manifest) -> tuple[str, str, str]:
    try:
        return (_group(str(doc["apiVersion"])), str(doc["kind"]), str(doc["metadata"]["name"]))
    except (KeyError, TypeError) as exc:
        raise KustomizeError(f"document without apiVersion/kind/metadata.name: {doc!r}") from exc


def build(directory: Path) -> list[Manifest]:
    """Render the kustomization in ``directory`` like ``kubectl kustomize directory``."""
    kfile = _kustomization_file(directory)
    spec = yaml.safe_load(kfile.read_text()) or {}
    if not isinstance(spec, dict):
        raise KustomizeError(f"{kfile}: not a mapping")
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported kustomization fields {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise KustomizeError(f"{kfile}: kind must be Kustomization")

    resources: list[Manifest] = []
    for entry in spec.get("resources", []):
        target = (directory / str(entry)).resolve()
        if target.is_dir():
            resources.extend(build(target))
        elif target.is_file():
            resources.extend(load_documents(target))
        else:
            raise KustomizeError(f"{kfile}: resource {entry!r} not found")
    seen: set[tuple[str, str, str, str]] = set()
    for doc in resources:
        key = (*_ident(doc), str(doc["metadata"].get("namespace", "")))
        if key in seen:
            raise KustomizeError(f"{kfile}: duplicate resource {key}")
        seen.add(key)

    for entry in spec.get("patches", []):
        _apply_patch_entry(directory, kfile, entry, resources)
    if "namespace" in spec:
        _set_namespace(resources, str(spec["namespace"]))
    for entry in spec.get("labels", []):
        _add_labels(kfile, entry, resources)
    for entry in spec.get("images", []):
        _set_image(kfile, entry, resources)
    return resources


def _apply_patch_entry(directory: Path, kfile: Path, entry: Any, resources: list[Manifest]) -> None:
    if not isinstance(entry, dict) or set(entry) != {"path"}:
        raise KustomizeError(f"{kfile}: only `patches: - path: <file>` is supported: {entry!r}")
    for patch in load_documents(directory / str(entry["path"])):
        ident = _ident(patch)
        matches = [doc for doc in resources if _ident(doc) == ident]
        if len(matches) != 1:
            raise KustomizeError(f"{kfile}: patch {ident} matches {len(matches)} resources")
        target = matches[0]
        builtin = ident[0] in BUILTIN_GROUPS
        merged = strategic_merge(target, patch, builtin=builtin, path=())
        target.clear()
        target.update(merged)


def strategic_merge(base: Any, patch: Any, *, builtin: bool, path: tuple[str, ...]) -> Any:
    """Strategic-merge ``patch`` into ``base`` (returns a new value)."""
    if isinstance(patch, dict):
        for key in patch:
            if str(key).startswith("$"):
                raise KustomizeError(f"patch directive {key!r} at {'.'.join(path)} unsupported")
        if not isinstance(base, dict):
            return _drop_nulls(copy.deepcopy(patch))
        result = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            elif key in result:
                result[key] = strategic_merge(
                    result[key], value, builtin=builtin, path=(*path, str(key))
                )
            else:
                result[key] = _drop_nulls(copy.deepcopy(value))
        return result
    if isinstance(patch, list):
        field = path[-1] if path else ""
        merge_key = _merge_key(field, path) if builtin else None
        if merge_key is None or not isinstance(base, list):
            return copy.deepcopy(patch)
        return _merge_list(base, patch, merge_key, builtin=builtin, path=path)
    return copy.deepcopy(patch)


def _merge_key(field: str, path: tuple[str, ...]) -> str | None:
    if field == "ports":
        # Container ports merge by containerPort, Service ports by port.
        return "containerPort" if "containers" in path or "initContainers" in path else "port"
    return MERGE_KEYS.get(field)


def _merge_list(
    base: list[Any], patch: list[Any], key: str, *, builtin: bool, path: tuple[str, ...]
) -> list[Any]:
    result = copy.deepcopy(base)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise KustomizeError(f"list item at {'.'.join(path)} lacks merge key {key!r}")
        for index, existing in enumerate(result):
            if isinstance(existing, dict) and existing.get(key) == item[key]:
                result[index] = strategic_merge(
                    existing, item, builtin=builtin, path=(*path, str(item[key]))
                )
                break
        else:
            # Kustomize (kyaml) appends patch items that match nothing.
            result.append(_drop_nulls(copy.deepcopy(item)))
    return result


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _set_namespace(resources: list[Manifest], namespace: str) -> None:
    namespaces = [doc for doc in resources if doc["kind"] == "Namespace"]
    if len(namespaces) > 1:
        raise KustomizeError("more than one Namespace object with `namespace:` set")
    for doc in resources:
        if doc["kind"] == "Namespace":
            doc["metadata"]["name"] = namespace
        elif doc["kind"] not in CLUSTER_SCOPED_KINDS:
            doc["metadata"]["namespace"] = namespace


def _add_labels(kfile: Path, entry: Any, resources: list[Manifest]) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("pairs"), dict):
        raise KustomizeError(f"{kfile}: labels entry needs `pairs`: {entry!r}")
    unsupported = {k for k in entry if k != "pairs" and entry[k]}
    if unsupported:
        raise KustomizeError(f"{kfile}: labels options {sorted(unsupported)} unsupported")
    for doc in resources:
        labels = doc["metadata"].setdefault("labels", {})
        labels.update({str(k): str(v) for k, v in entry["pairs"].items()})


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``registry/name:tag@digest`` -> (name, tag, digest)."""
    digest: str | None = None
    if "@" in image:
        image, digest = image.split("@", 1)
    tag: str | None = None
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        image, tag = image.rsplit(":", 1)
    return image, tag, digest


def _set_image(kfile: Path, entry: Any, resources: list[Manifest]) -> None:
    allowed = {"name", "newName", "newTag", "digest"}
    if not isinstance(entry, dict) or "name" not in entry or set(entry) - allowed:
        raise KustomizeError(f"{kfile}: images entry must use {sorted(allowed)}: {entry!r}")
    for doc in resources:
        pod_path = POD_TEMPLATE_PATHS.get(str(doc["kind"]))
        if pod_path is None:
            continue
        pod: Any = doc
        for part in pod_path:
            pod = pod.get(part, {}) if isinstance(pod, dict) else {}
        for field in ("containers", "initContainers"):
            for container in pod.get(field, []) if isinstance(pod, dict) else []:
                name, tag, digest = split_image(str(container["image"]))
                if name != entry["name"]:
                    continue
                name = str(entry.get("newName", name))
                if "digest" in entry:
                    tag, digest = None, str(entry["digest"])
                elif "newTag" in entry:
                    tag, digest = str(entry["newTag"]), None
                image = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
                container["image"] = image
