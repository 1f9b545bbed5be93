"""The in-process renderer (tests/deploy/kustomize.py) against real kustomize, and its
refusal of features it does not implement."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import KustomizeError, build, split_image, strategic_merge
from tests.deploy.manifests import K8S, KUSTOMIZATIONS, kubectl_executable, render


def _by_id(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    out = {}
    for doc in docs:
        meta = doc["metadata"]
        out[(doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])] = doc
    assert len(out) == len(docs)
    return out


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_renderer_matches_kubectl_kustomize(kustomization: str) -> None:
    out = subprocess.run(
        [kubectl_executable(), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    expected = _by_id([d for d in yaml.safe_load_all(out) if d])
    ours = _by_id(render(kustomization))
    assert sorted(ours) == sorted(expected)
    for key, doc in expected.items():
        assert ours[key] == doc, key


def test_strategic_merge_semantics() -> None:
    base = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
            "tolerations": [{"key": "t"}],
            "keep": 1,
            "drop": 2,
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "a", "env": [{"name": "L", "value": "2"}]}],
            "tolerations": [{"key": "u"}],
            "drop": None,
        }
    }
    merged = strategic_merge(base, patch, builtin=True, path=())
    assert merged["spec"]["containers"] == [
        {
            "name": "a",
            "image": "x",
            "env": [{"name": "K", "value": "1"}, {"name": "L", "value": "2"}],
        },
        {"name": "b", "image": "y"},
    ]
    assert merged["spec"]["tolerations"] == [{"key": "u"}]  # no merge key: replaced
    assert merged["spec"]["keep"] == 1
    assert "drop" not in merged["spec"]
    # Custom resources have no schema: every list is replaced, as kustomize does.
    cr = strategic_merge(base, patch, builtin=False, path=())
    assert cr["spec"]["containers"] == patch["spec"]["containers"]


def test_split_image() -> None:
    assert split_image("video-platform/api:0.1.0") == ("video-platform/api", "0.1.0", None)
    assert split_image("localhost:5000/api") == ("localhost:5000/api", None, None)
    assert split_image("api@sha256:ab") == ("api", None, "sha256:ab")


def _write(directory: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (directory / name).write_text(text)


CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  A: '1'\n"


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [c.yaml]\ncommonLabels: {a: b}\n", "unsupported kustomization fields"),
        ("resources: [c.yaml]\nnamePrefix: x-\n", "unsupported kustomization fields"),
        ("resources: [c.yaml]\npatches:\n  - patch: '{}'\n", "only `patches: - path"),
        (
            "resources: [c.yaml]\nlabels:\n  - pairs: {a: b}\n    includeSelectors: true\n",
            "unsupported",
        ),
        ("resources: [c.yaml]\npatches:\n  - path: p.yaml\n", "matches 0 resources"),
        ("resources: [missing.yaml]\n", "not found"),
    ],
)
def test_unsupported_or_wrong_kustomizations_are_refused(
    tmp_path: Path, kustomization: str, message: str
) -> None:
    patch = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n"
    _write(tmp_path, {"kustomization.yaml": kustomization, "c.yaml": CM, "p.yaml": patch})
    with pytest.raises(KustomizeError, match=message):
        build(tmp_path)
