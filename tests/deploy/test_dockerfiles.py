"""The Dockerfiles pass hadolint (no findings at all) and have the promised shape. This is
static; `make test-containers` builds and runs them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.manifests import DEPLOY, DOCKERFILES, REPO, hadolint_executable, run_hadolint

RUNTIME_IMAGE = "python:3.11-slim-bookworm"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    result = run_hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout


def test_hadolint_bites(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN apt-get update && apt-get install ffmpeg\nCMD video-api\n")
    result = subprocess.run(
        [hadolint_executable(), "--no-color", "-c", str(DEPLOY / ".hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    for rule in ("DL3006", "DL3014", "DL3015", "DL3009", "DL3025"):
        assert rule in result.stdout, (rule, result.stdout)


def _stages(dockerfile: Path) -> list[str]:
    """The Dockerfile split into its stages (text from one FROM to the next)."""
    text = dockerfile.read_text()
    parts = re.split(r"^(?=FROM )", text, flags=re.MULTILINE)
    return [p for p in parts if p.startswith("FROM ")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_shape(dockerfile: Path) -> None:
    stages = _stages(dockerfile)
    # builder ... final; the API image also has a "web" stage (npm ci of hls.js).
    assert len(stages) == (3 if dockerfile.name == "api.Dockerfile" else 2)
    builder, final = stages[0], stages[-1]
    # Both stages from the same base, a build argument whose default is the runtime image
    # (CI's container test overrides it with a locally built Debian image).
    assert re.search(rf"^ARG PYTHON_BASE={re.escape(RUNTIME_IMAGE)}$", dockerfile.read_text(), re.M)
    assert builder.startswith("FROM ${PYTHON_BASE} AS builder")
    assert final.startswith("FROM ${PYTHON_BASE}\n")
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    # No toolchain and no pip install in the final image.
    assert not re.search(r"\b(gcc|g\+\+|build-essential|libc6-dev)\b", final)
    assert "pip install" not in final
    user = re.search(r"^USER (\S+)$", final, re.MULTILINE)
    assert user and not user.group(1).startswith(("root", "0"))
    assert re.search(r"^USER \d+:\d+$", final, re.MULTILINE), "numeric USER for runAsNonRoot"
    assert re.search(r"^WORKDIR /app$", final, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*urllib\.request.*/healthz", final, re.MULTILINE)
    assert re.search(r"^EXPOSE \d+$", final, re.MULTILINE)


def test_ffmpeg_only_in_worker_image() -> None:
    api, worker = DOCKERFILES
    assert "ffmpeg" not in api.read_text()
    final = _stages(worker)[-1]
    assert "apt-get install -y --no-install-recommends ffmpeg" in final
    assert "rm -rf /var/lib/apt/lists/*" in final
    assert re.search(r"^EXPOSE 8001$", final, re.MULTILINE)
    assert re.search(r'^CMD \["video-worker"\]$', final, re.MULTILINE)
    assert re.search(r'^CMD \["video-api"\]$', _stages(api)[-1], re.MULTILINE)
    assert re.search(
        r"^RUN pip install --no-cache-dir --no-deps \.$", worker.read_text(), re.MULTILINE
    )
    assert '".[api]"' in api.read_text()


def test_dockerignore_keeps_the_context_small() -> None:
    lines = set((REPO / ".dockerignore").read_text().split())
    for entry in (".venv", ".git", ".stack", "tests", "bench/out", ".pytest_cache", ".mypy_cache"):
        assert entry in lines, entry
    # What the images COPY must not be excluded.
    for kept in ("pyproject.toml", "shared", "api_service", "transcode_service"):
        assert kept not in lines
    assert "!README.md" in lines
    assert "!deploy/requirements" in lines  # the locks the images install


def _locked(extra: str) -> dict[str, str]:
    """name -> pinned version of deploy/requirements/<extra>.txt; every pin carries hashes."""
    text = (DEPLOY / "requirements" / f"{extra}.txt").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    pins: dict[str, str] = {}
    for entry in entries:
        first = entry.split(" ", 1)[0]
        name, _, version = first.partition("==")
        assert version, f"{extra}.txt: {first!r} is not pinned with =="
        assert "--hash=sha256:" in entry, f"{extra}.txt: {name} has no hash"
        pins[canonicalize_name(name)] = version
    return pins


@pytest.mark.parametrize("extra", ["api", "worker"])
def test_lock_covers_every_dependency_of_the_image(extra: str) -> None:
    """An image installs with --no-deps from its lock, so a dependency added to pyproject.toml
    without `make lock` would be missing at run time: fail here instead."""
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    # The worker image installs the base dependencies only (there is no worker extra).
    if extra != "worker":
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    locked = _locked(extra)
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in locked, f"{name} missing from deploy/requirements/{extra}.txt: make lock"
        assert req.specifier.contains(locked[name]), f"{name}=={locked[name]} outside {req}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dependencies_from_the_lock_before_the_source(dockerfile: Path) -> None:
    builder = _stages(dockerfile)[0]
    extra = dockerfile.name.split(".")[0]
    lock = builder.index(f"COPY deploy/requirements/{extra}.txt ./requirements.txt")
    install = builder.index(
        "pip install --no-cache-dir --require-hashes --no-deps -r requirements.txt"
    )
    source = builder.index("COPY shared ./shared")
    project_install = (
        "pip install --no-cache-dir --no-deps ."
        if extra == "worker"
        else f'pip install --no-cache-dir --no-deps ".[{extra}]"'
    )
    project = builder.index(project_install)
    assert lock < install < source < project


def test_api_image_carries_hlsjs_from_the_lock() -> None:
    api = DOCKERFILES[0].read_text()
    web, final = _stages(DOCKERFILES[0])[1:]
    assert web.startswith("FROM ${PYTHON_BASE} AS web")
    assert "COPY web/package.json web/package-lock.json ./" in web
    assert re.search(r"^RUN npm ci\b", web, re.MULTILINE)
    assert "npm" not in final.replace("node_modules", "")
    copied = re.search(r"^COPY --from=web (\S+) (\S+)$", final, re.MULTILINE)
    assert copied and copied.group(1).endswith("/hls.min.js")
    assert re.search(r"VIDEO_SERVER__HLSJS_DIR=(\S+)", api).group(1) + "/hls.min.js" == (  # type: ignore[union-attr]
        copied.group(2)
    )
