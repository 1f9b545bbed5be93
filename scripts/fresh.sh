#!/usr/bin/env bash
# `make test-fresh`: the README's promise checked on a fresh machine. A Debian bookworm
# container (minbase + make + git, nothing else) clones this checkout's committed HEAD and runs
# `make test` exactly as the README says, then `make run` and the README's curl walkthrough.
# Everything else (Python venv, ffmpeg, MariaDB, RabbitMQ, SeaweedFS, users, database, bucket)
# must be installed and started by the project itself, from nothing, and the log shows it.
#
# The container has its own network namespace: the host's services on 3306/5672/8333 are
# invisible to it, and it reaches apt, PyPI and npm through Podman's NAT with this machine's
# apt mirror, proxy and CA settings (scripts/podman.sh). The base image is cached in Podman's
# storage; everything else starts from nothing on every run.
#
# apt's downloaded .deb files are kept between runs on the same machine in FRESH_CACHE_DIR
# (default /var/cache/video-platform/fresh; FRESH_CACHE_DIR= disables it): the packages are
# still installed from nothing every time, only not downloaded again. An empty cache, as on a
# new machine, works the same, just slower. (pip's HTTP cache is not kept: mounted the same
# way it stayed empty here, the responses it gets through this network are not cacheable.)
#
#   FRESH_KEEP=1      keep the container after the run (to look around: podman exec -it NAME bash)
#   FRESH_MAKE_ARGS   extra arguments for the inner `make test`, e.g. PYTEST_ARGS="-x"
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/podman.sh
source scripts/podman.sh

IMAGE=localhost/video-platform/fresh-bookworm:make-git
NAME="video-fresh-$$"
STARTED=$SECONDS

stamp() { printf '\n=== fresh: %s (+%ds)\n' "$*" "$((SECONDS - STARTED))"; }

stamp "podman setup"
podman_setup
podman_base "$IMAGE" make,git

work=$(mktemp -d "${TMPDIR:-/tmp}/video-fresh.XXXXXX")
cleanup() {
    if [[ ${FRESH_KEEP:-0} != 1 ]]; then
        pm rm -f --time 5 "$NAME" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# The committed HEAD only, as a clone would see it (uncommitted changes are not tested).
git bundle create --quiet "$work/repo.bundle" HEAD
head=$(git rev-parse --short HEAD)
if [[ -n $(git status --porcelain --untracked-files=no) ]]; then
    echo "fresh: note: uncommitted changes are not part of this run (testing commit $head)"
fi

mapfile -t env_flags < <(passthrough_env_flags)

cache_flags=()
FRESH_CACHE_DIR=${FRESH_CACHE_DIR-/var/cache/video-platform/fresh}
if [[ -n $FRESH_CACHE_DIR ]]; then
    mkdir -p "$FRESH_CACHE_DIR/apt"
    cache_flags=(--volume "$FRESH_CACHE_DIR/apt:/var/cache/apt/archives")
    echo "fresh: download cache $FRESH_CACHE_DIR ($(du -sh "$FRESH_CACHE_DIR" 2>/dev/null | cut -f1))"
fi

# Inside the container. `make test` is the README's command, unchanged; then the README's
# `make run` and its curl walkthrough, taken from README.md itself.
inner=$(
    cat <<'EOF'
set -euo pipefail
step() { printf '\n=== fresh (container): %s\n' "$*"; }
step "installed before: [$(dpkg-query -W -f='${db:Status-Status} ${Package}, ' mariadb-server rabbitmq-server python3 ffmpeg 2>/dev/null | grep -o 'installed [^,]*' || true)] (expected: none of mariadb-server, rabbitmq-server, python3, ffmpeg)"
git -c advice.detachedHead=false clone --quiet /src/repo.bundle /root/video-platform
cd /root/video-platform
step "make test at $(git rev-parse --short HEAD)"
make test ${FRESH_MAKE_ARGS:-}

step "make run + the README's curl walkthrough"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null   # the README says so
make run >/tmp/make-run.log 2>&1 &
run_pid=$!
for _ in $(seq 240); do
    curl -sf http://localhost:8000/readyz >/dev/null && break
    kill -0 "$run_pid" 2>/dev/null || { cat /tmp/make-run.log; exit 1; }
    sleep 0.5
done
curl -sf http://localhost:8000/readyz >/dev/null || { cat /tmp/make-run.log; exit 1; }
awk '/^## Your first video, with curl/ {s=1} s && /^```sh/ {c=1; next} c && /^```/ {exit} c' \
    README.md >/tmp/walkthrough.sh
cd /tmp
timeout 600 bash -euo pipefail /tmp/walkthrough.sh | tee /tmp/walkthrough.out
kill "$run_pid" 2>/dev/null || true   # the container is removed afterwards anyway
grep -q '"status": "online"' /tmp/walkthrough.out || { echo "walkthrough: video not online"; exit 1; }
grep -q 'codec_name=h264' /tmp/walkthrough.out || { echo "walkthrough: playback did not probe as h264"; exit 1; }
step "README walkthrough: video online, playback URL probes as HLS h264"
EOF
)

stamp "run: make test in a fresh $IMAGE container (commit $head)"
rc=0
pm run --name "$NAME" --hostname fresh \
    --volume "$work:/src:ro" \
    --env CI="${CI:-true}" --env FRESH_MAKE_ARGS="${FRESH_MAKE_ARGS:-}" \
    --env PIP_RETRIES=10 \
    "${PODMAN_DNS_FLAGS[@]}" \
    "${cache_flags[@]}" \
    "${env_flags[@]}" \
    "$IMAGE" bash -c "$inner" || rc=$?
stamp "done, exit $rc"
exit "$rc"
