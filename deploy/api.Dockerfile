# syntax=docker/dockerfile:1
# API image: aiohttp API (video-api) and the schema migration (video-migrate).
# Build from the repository root:
#   docker build -f deploy/api.Dockerfile -t video-platform/api:dev .

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
# Dependencies first, exactly the versions in deploy/requirements/api.txt (`make lock`;
# make test-containers runs these images in CI), every file checked against its hash. This
# layer is rebuilt only when the lock changes, not on every source change.
COPY deploy/requirements/api.txt ./requirements.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements.txt

COPY pyproject.toml README.md ./
COPY shared ./shared
COPY api_service ./api_service
COPY transcode_service ./transcode_service
# The project itself, resolving nothing again (--no-deps: its dependencies are above).
# DL3013 wants a pinned version; this is the local project, not a registry package.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-deps ".[api]"

# ---- web: hls.js for the page (api_service/static/index.html loads /app/vendor/hls/hls.min.js) --
# Exactly web/package-lock.json (npm ci checks every package's integrity hash). Node and npm
# come from Debian on the same base, so no Node image is needed; none of it reaches the final
# image, only the one minified file.
FROM ${PYTHON_BASE} AS web
RUN apt-get update \
    && apt-get install -y --no-install-recommends npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

# ---- final: slim runtime, no compilers, non-root ----------------------------------------------
FROM ${PYTHON_BASE}

LABEL org.opencontainers.image.title="video-platform-api" \
      org.opencontainers.image.description="Video platform HTTP API (video-api, video-migrate)" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
# WORKDIR below must exist in the image: with a read-only root filesystem (the Kubernetes
# manifests) the runtime cannot create it at start (found by `podman play kube`).
RUN mkdir -p /app
COPY --from=web /web/node_modules/hls.js/dist/hls.min.js /opt/hls.js/hls.min.js

# Configuration comes from VIDEO_* environment variables; a YAML file may be mounted at
# VIDEO_CONFIG_FILE (absent by default, which is fine: defaults + environment apply).
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIDEO_CONFIG_FILE=/etc/video-platform/config.yaml \
    VIDEO_SERVER__HOST=0.0.0.0 \
    VIDEO_SERVER__PORT=8000 \
    VIDEO_SERVER__HLSJS_DIR=/opt/hls.js \
    VIDEO_LOGGING__JSON_OUTPUT=true

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# No curl in slim images: probe /healthz with the standard library (exit 1 on any error).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VIDEO_SERVER__PORT', '8000'), timeout=4)"]

# Exec form: the Python process is PID 1 and receives SIGTERM directly.
CMD ["video-api"]
