#!/usr/bin/env bash
# Podman on a Debian/Ubuntu machine with no reachable image registry: install it, configure it
# for machines like CI's (no systemd, cgroups v1/hybrid, low rlimits), and build base images
# from Debian packages with mmdebstrap. Sourced by scripts/fresh.sh and scripts/containers.sh;
# also usable directly:
#
#   scripts/podman.sh setup                      install and configure Podman
#   scripts/podman.sh base TAG PKG[,PKG...]      build TAG from Debian bookworm + PKGs (cached)
#   scripts/podman.sh podman ARG...              run podman with the project's configuration
#
# Images are cached in Podman's storage on this machine (rebuilt when missing, or always with
# PODMAN_REBUILD_BASE=1); containers.conf lives in .stack/podman/.
set -euo pipefail

PODMAN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PODMAN_DIR="$PODMAN_ROOT/.stack/podman"
export CONTAINERS_CONF="$PODMAN_DIR/containers.conf"
# catatonit: the pause process of `podman play kube` pods (podman only recommends it, and
# recommends are not installed).
PODMAN_PACKAGES=(podman buildah runc fuse-overlayfs slirp4netns uidmap netavark aardvark-dns iptables mmdebstrap catatonit)
DEBIAN_SUITE=bookworm

# Environment passed into containers and builds so they reach the registries the way this
# machine does (proxies, pip/npm index and CA settings). Values naming file:// indexes are local to
# this machine and are left out.
PASSTHROUGH_ENV=(
    http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY
    PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST PIP_DEFAULT_TIMEOUT PIP_CERT
    REQUESTS_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR
    NODE_EXTRA_CA_CERTS npm_config_registry npm_config_cafile
)

# Resolver options for containers and builds behind Podman's NAT: glibc sends the A and AAAA
# queries from one socket at once, and under load the NAT's connection tracking can drop one
# answer ("Temporary failure in name resolution" from pip); reopening the socket per query
# avoids that race.
PODMAN_DNS_FLAGS=(--dns-option=single-request-reopen)

podman_say() { printf 'podman: %s\n' "$*"; }

pm() { podman "$@"; }

# --env flags for PASSTHROUGH_ENV (prints one flag per line; read with mapfile).
passthrough_env_flags() {
    local name
    for name in "${PASSTHROUGH_ENV[@]}"; do
        if [[ -n ${!name:-} && ${!name} != *file:* ]]; then
            printf -- '--env=%s=%s\n' "$name" "${!name}"
        fi
    done
}

podman_setup() {
    local missing=() pkg
    for pkg in "${PODMAN_PACKAGES[@]}"; do
        [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]] || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        podman_say "installing ${missing[*]}"
        local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
        "${apt[@]}" update
        "${apt[@]}" install -y --no-install-recommends "${missing[@]}" >/dev/null
    fi
    mkdir -p "$PODMAN_DIR"
    # runc: crun fails on hybrid cgroups here; cgroupfs + file events: no systemd; the default
    # rlimits are above what such sandboxes allow, so cap them at this machine's hard limits.
    local nofile
    nofile=$(ulimit -Hn)
    [[ $nofile == unlimited ]] && nofile=1048576
    cat >"$CONTAINERS_CONF.tmp" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
EOF
    mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
    podman_say "ready ($(podman --version), config $CONTAINERS_CONF)"
}

# The apt sources this machine uses (deb822 or one-line files), for mmdebstrap: the image
# then installs from the same mirror and through the same proxy settings as the host.
apt_source_files() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -s $f ]] && grep -qE "^[^#]*(debian|ubuntu)" "$f" && grep -qE "$DEBIAN_SUITE|deb.debian.org" "$f" && printf '%s\n' "$f"
    done
    return 0
}

# podman_base TAG PACKAGES: a bookworm minbase image with PACKAGES (comma-separated, may be
# empty), plus this machine's extra CA certificates (a TLS-intercepting proxy's, for example)
# so that pip and curl inside trust what the host trusts. Cached by TAG.
podman_base() {
    local tag=$1 packages=${2:-}
    if [[ ${PODMAN_REBUILD_BASE:-0} != 1 ]] && pm image exists "$tag"; then
        podman_say "base image $tag: cached"
        return
    fi
    local work mirrors=() aptopts=() f
    work=$(mktemp -d "${TMPDIR:-/tmp}/video-base.XXXXXX")
    mapfile -t mirrors < <(apt_source_files)
    if ((${#mirrors[@]} == 0)); then
        mirrors=(http://deb.debian.org/debian)
    fi
    # The host's apt proxy, if it has one.
    while IFS= read -r f; do
        aptopts+=(--aptopt="$f")
    done < <(apt-config dump 2>/dev/null | grep -E '^Acquire::(https?|ftp)::Proxy ' || true)
    local hooks=()
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        hooks+=(--customize-hook='mkdir -p "$1/usr/local/share/ca-certificates"')
        hooks+=(--customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"')
        if [[ ,$packages, == *,ca-certificates,* ]]; then
            hooks+=(--customize-hook='chroot "$1" update-ca-certificates >/dev/null')
        fi
    fi
    podman_say "building base image $tag (Debian $DEBIAN_SUITE minbase${packages:+ + $packages})"
    local start=$SECONDS
    mmdebstrap --quiet --variant=minbase --format=tar \
        ${packages:+--include="$packages"} \
        "${aptopts[@]}" "${hooks[@]}" \
        "$DEBIAN_SUITE" "$work/rootfs.tar" "${mirrors[@]}"
    pm import --quiet \
        --change 'CMD ["/bin/bash"]' \
        --change 'ENV LANG=C.UTF-8' \
        "$work/rootfs.tar" "$tag" >/dev/null
    rm -rf "$work"
    podman_say "base image $tag: built in $((SECONDS - start))s"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    case "${1:-}" in
        setup) podman_setup ;;
        base)
            shift
            (($# >= 1)) || { echo "usage: $0 base TAG [PKG,PKG...]" >&2; exit 2; }
            podman_base "$@"
            ;;
        podman)
            shift
            pm "$@"
            ;;
        *)
            echo "usage: $0 {setup|base TAG [PKGS]|podman ARG...}" >&2
            exit 2
            ;;
    esac
fi
