#!/usr/bin/env bash
# `make test-containers`: build the API and worker images from deploy/*.Dockerfile and run the
# seed flow through them against this machine's MariaDB, RabbitMQ and S3 (make up's stack).
#
#   1. Podman set up (scripts/podman.sh); a Debian bookworm base with python3 built with
#      mmdebstrap and passed as PYTHON_BASE: the same Dockerfiles a user builds, only the base
#      differs (no registry is reachable here).
#   2. An isolated run: its own database (video_ctr_<id>), queue prefix and bucket, removed at
#      the end; `video-migrate` from the API image creates the schema.
#   3. API + worker A containers (--network host: the presigned S3 URLs name 127.0.0.1:8333,
#      which must mean the same thing to the containers and to the client); the flow uploads a
#      clip; once its transcode runs, worker A gets `podman stop` (its job goes back to the
#      queue), worker B starts and finishes it; the playback URL plays.
#
# Expects the settings in the environment (make runs it through `scripts/stack.sh exec`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/podman.sh
source scripts/podman.sh

PY=.venv/bin/python
BASE=localhost/video-platform/python-base:bookworm
TAG=${CONTAINER_TAG:-ci}
API_IMAGE=localhost/video-platform/api:$TAG
WORKER_IMAGE=localhost/video-platform/worker:$TAG
RUN=$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')
STARTED=$SECONDS

stamp() { printf '\n=== containers: %s (+%ds)\n' "$*" "$((SECONDS - STARTED))"; }

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The configured database URL with this run's database name.
DB_URL=$("$PY" - "video_ctr_$RUN" <<'EOF'
import sys
from sqlalchemy.engine import make_url
from shared.settings import load_settings
url = make_url(load_settings().database.url.get_secret_value()).set(database=sys.argv[1])
print(url.render_as_string(hide_password=False))
EOF
)
API_PORT=$(free_port)
HEALTH_A=$(free_port)
HEALTH_B=$(free_port)
export VIDEO_DATABASE__URL=$DB_URL
export VIDEO_RABBITMQ__PREFIX="ctr$RUN."
export VIDEO_S3__BUCKET="ctr-$RUN"

# Settings for every container: this run's resources, the host's endpoints and credentials.
# The containers run against this machine's development stack and its development S3 keys,
# which production settings refuse (shared/settings.py, ensure_production_safe).
common_env=(
    --env VIDEO_SERVER__ENVIRONMENT=development
    --env "VIDEO_DATABASE__URL=$DB_URL"
    --env "VIDEO_RABBITMQ__PREFIX=$VIDEO_RABBITMQ__PREFIX"
    --env "VIDEO_S3__BUCKET=$VIDEO_S3__BUCKET"
)
while IFS= read -r line; do
    common_env+=(--env "$line")
done < <("$PY" - <<'EOF'
from shared.settings import load_settings
s = load_settings()
print(f"VIDEO_RABBITMQ__URL={s.rabbitmq.url.get_secret_value()}")
print(f"VIDEO_S3__ENDPOINT_URL={s.s3.endpoint_url}")
print(f"VIDEO_S3__ACCESS_KEY={s.s3.access_key.get_secret_value()}")
print(f"VIDEO_S3__SECRET_KEY={s.s3.secret_key.get_secret_value()}")
EOF
)

cleanup() {
    local rc=$?
    stamp "cleanup"
    for name in "ctr-$RUN-api" "ctr-$RUN-worker-a" "ctr-$RUN-worker-b"; do
        pm rm -f --time 5 "$name" >/dev/null 2>&1 || true
    done
    pm pod rm -f --time 5 "ctr-$RUN-kube-pod-0" >/dev/null 2>&1 || true
    "$PY" - <<'EOF' || true
import asyncio

import aio_pika
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.s3 import s3_client
from shared.settings import load_settings
from shared.topology import Topology, delete_topology


async def main() -> None:
    s = load_settings()
    url = make_url(s.database.url.get_secret_value())
    try:
        engine = create_async_engine(url.set(database=""))
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{url.database}`"))
        await engine.dispose()
    except Exception as exc:  # cleanup goes on with the rest
        print(f"cleanup: database {url.database}: {exc}")
    try:
        async with s3_client(s.s3) as s3:
            paginator = s3.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=s.s3.bucket):
                for obj in page.get("Contents", []):
                    await s3.delete_object(Bucket=s.s3.bucket, Key=obj["Key"])
            await s3.delete_bucket(Bucket=s.s3.bucket)
    except Exception as exc:
        print(f"cleanup: bucket {s.s3.bucket}: {exc}")
    try:
        connection = await aio_pika.connect(s.rabbitmq.url.get_secret_value())
        async with connection:
            await delete_topology(await connection.channel(), Topology.from_settings(s.rabbitmq))
    except Exception as exc:
        print(f"cleanup: queues {s.rabbitmq.prefix}*: {exc}")


asyncio.run(main())
EOF
    stamp "done, exit $rc"
}
trap cleanup EXIT

stamp "podman setup and base image"
podman_setup
podman_base "$BASE" python3,python3-venv,ca-certificates

for image in api worker; do
    stamp "build $image image from deploy/$image.Dockerfile"
    # The Dockerfile's pip must trust what this machine trusts (a TLS-intercepting proxy's CA).
    pm build --quiet --layers --format docker "${PODMAN_DNS_FLAGS[@]}" \
        --build-arg "PYTHON_BASE=$BASE" \
        --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
        --env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
        ${npm_config_registry:+--env "npm_config_registry=$npm_config_registry"} \
        -f "deploy/$image.Dockerfile" -t "localhost/video-platform/$image:$TAG" . >/dev/null
done

stamp "run $RUN: database, bucket, migrations (video-migrate in the API image)"
"$PY" scripts/stack_probe.py database create
"$PY" scripts/stack_probe.py bucket create
pm run --rm --network host --health-interval=disable "${common_env[@]}" "$API_IMAGE" video-migrate

stamp "start API (127.0.0.1:$API_PORT) and worker A"
pm run -d --name "ctr-$RUN-api" --network host --health-interval=disable "${common_env[@]}" \
    --env VIDEO_SERVER__HOST=127.0.0.1 --env "VIDEO_SERVER__PORT=$API_PORT" \
    --env "VIDEO_SERVER__PUBLIC_BASE_URL=http://127.0.0.1:$API_PORT" \
    "$API_IMAGE" >/dev/null
start_worker() { # NAME HEALTH_PORT
    pm run -d --name "ctr-$RUN-worker-$1" --network host --health-interval=disable "${common_env[@]}" \
        --env VIDEO_WORKER__HEALTH_HOST=127.0.0.1 --env "VIDEO_WORKER__HEALTH_PORT=$2" \
        --env VIDEO_WORKER__SHUTDOWN_GRACE=2 \
        "$WORKER_IMAGE" >/dev/null
}
start_worker a "$HEALTH_A"
wait_ready() { # URL NAME
    for _ in $(seq 240); do
        curl -sf "$1" >/dev/null && return 0
        sleep 0.5
    done
    pm logs --tail 40 "$2" >&2 || true
    echo "containers: $2 not ready at $1" >&2
    return 1
}
wait_ready "http://127.0.0.1:$API_PORT/readyz" "ctr-$RUN-api"
wait_ready "http://127.0.0.1:$HEALTH_A/readyz" "ctr-$RUN-worker-a"

stamp "flow: upload -> cover -> transcode; worker A stopped mid-transcode, worker B finishes"
# Podman's healthcheck timers need systemd; the flow polls the health endpoints itself.
hook="set -e
$(declare -f pm start_worker wait_ready)
export CONTAINERS_CONF='$CONTAINERS_CONF' RUN='$RUN' WORKER_IMAGE='$WORKER_IMAGE'
common_env=($(printf '%q ' "${common_env[@]}"))
echo 'containers: podman stop worker A (mid-transcode)'
podman stop --time 10 ctr-$RUN-worker-a >/dev/null
echo 'containers: start worker B'
start_worker b $HEALTH_B
wait_ready http://127.0.0.1:$HEALTH_B/readyz ctr-$RUN-worker-b"
"$PY" scripts/container_flow.py --api "http://127.0.0.1:$API_PORT" --on-transcoding "$hook"

# The job really moved: A was interrupted, B finished a transcode.
logs_a=$(pm logs "ctr-$RUN-worker-a" 2>&1)
logs_b=$(pm logs "ctr-$RUN-worker-b" 2>&1)
finished() { grep '"job finished"' | grep '"transcode"' | grep -q "\"$1\""; }
finished interrupted <<<"$logs_a" \
    || { echo "$logs_a" | tail -20; echo "worker A has no interrupted transcode" >&2; exit 1; }
finished succeeded <<<"$logs_b" \
    || { echo "$logs_b" | tail -20; echo "worker B did not finish the transcode" >&2; exit 1; }
stamp "passed: worker A stopped mid-transcode, worker B finished the job, playback plays"

stamp "podman play kube: the rendered transcode-worker Deployment (deploy/k8s/base)"
# scripts/kube_smoke.py says what it adapts (image, host network, Secret -> ConfigMap, port).
KUBE_HEALTH=$(free_port)
kube_env=()
for ((i = 1; i < ${#common_env[@]}; i += 2)); do
    [[ ${common_env[i]} == VIDEO_DATABASE__* ]] || kube_env+=("${common_env[i]}")
done
kube_yaml=$(mktemp)
"$PY" scripts/kube_smoke.py "ctr-$RUN-kube" "$WORKER_IMAGE" "$KUBE_HEALTH" "${kube_env[@]}" >"$kube_yaml"
pm play kube "$kube_yaml" >/dev/null
rm -f "$kube_yaml"
wait_ready "http://127.0.0.1:$KUBE_HEALTH/readyz" "ctr-$RUN-kube-pod-0-worker"
# The Deployment's VIDEO_WORKER__QUEUES reached the process: it consumes the transcode queue only.
pm logs "ctr-$RUN-kube-pod-0-worker" 2>&1 | grep '"worker started"' | grep -q '"queues": \["transcode"\]' \
    || { pm logs --tail 20 "ctr-$RUN-kube-pod-0-worker" >&2; echo "kube worker: wrong queues" >&2; exit 1; }
pm pod stop --time 30 "ctr-$RUN-kube-pod-0" >/dev/null
pm logs "ctr-$RUN-kube-pod-0-worker" 2>&1 | grep -q '"worker stopped"' \
    || { echo "kube worker: no clean stop on SIGTERM" >&2; exit 1; }
stamp "passed: the rendered worker Deployment runs under podman play kube, ready, transcode queue only, stops cleanly"
