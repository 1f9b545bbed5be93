# syntax=docker/dockerfile:1
# Worker image: aio-pika transcode/cover worker (video-worker) with ffmpeg and ffprobe.
# Build from the repository root:
#   docker build -f deploy/worker.Dockerfile -t video-platform/worker:dev .

# The Python base of both stages. CI's container test (scripts/containers.sh) builds this
# same file with a local Debian bookworm image (python3 from Debian) in its place, because no
# registry is reachable there; everything below works with either.
ARG PYTHON_BASE=python:3.11-slim-bookworm

# ---- builder: resolve and install the distribution into a self-contained venv ----------------
FROM ${PYTHON_BASE} AS builder

# A C toolchain only in this stage, for any dependency without a wheel for this platform;
# none of it reaches the final image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
# Dependencies first, exactly the versions in deploy/requirements/worker.txt (`make lock`;
# make test-containers runs these images in CI), every file checked against its hash. This
# layer is rebuilt only when the lock changes, not on every source change.
COPY deploy/requirements/worker.txt ./requirements.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.txt

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY api_service ./api_service
COPY transcode_service ./transcode_service
# The base dependencies only (no extra): no database driver, no migrations tooling.
# The project itself, resolving nothing again (--no-deps: its dependencies are above).
# DL3013 wants a pinned version; this is the local project, not a registry package.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-deps .

# ---- final: slim runtime + ffmpeg, no compilers, non-root -------------------------------------
FROM ${PYTHON_BASE}

LABEL org.opencontainers.image.title="video-platform-worker" \
      org.opencontainers.image.description="Video platform transcode/cover worker (video-worker)" \
      org.opencontainers.image.licenses="Apache-2.0"

# ffmpeg brings ffprobe; --no-install-recommends keeps X11/VA-API/etc. extras out.
# bubblewrap: ffmpeg without network where the runtime allows user namespaces
# (worker.ffmpeg_sandbox: auto falls back to a minimal environment where it does not).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg bubblewrap \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/video-worker \
    && chown app:app /var/lib/video-worker

COPY --from=builder /opt/venv /opt/venv
# WORKDIR below must exist in the image: with a read-only root filesystem (the Kubernetes
# manifests) the runtime cannot create it at start (found by `podman play kube`).
RUN mkdir -p /app

# Scratch space for downloads and ffmpeg outputs; Kubernetes mounts an emptyDir here, compose
# an anonymous volume per replica. The health server must listen on all interfaces so that
# kubelet probes reach it.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIDEO_CONFIG_FILE=/etc/video-platform/config.yaml \
    VIDEO_WORKER__WORK_DIR=/var/lib/video-worker \
    VIDEO_WORKER__HEALTH_HOST=0.0.0.0 \
    VIDEO_WORKER__HEALTH_PORT=8001 \
    VIDEO_LOGGING__JSON_OUTPUT=true

WORKDIR /app
VOLUME ["/var/lib/video-worker"]
USER 10001:10001
EXPOSE 8001

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VIDEO_WORKER__HEALTH_PORT', '8001'), timeout=4)"]

# Exec form: the Python process is PID 1 and receives SIGTERM directly (graceful drain).
CMD ["video-worker"]
