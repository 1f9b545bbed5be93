#!/usr/bin/env bash
# System packages for the web page and its browser tests: npm (installs hls.js, see
# web/package.json) and Debian's Chromium, which Playwright drives (Playwright's own browser
# download is not used). Installs with apt-get only what is missing; safe to re-run.
set -euo pipefail

missing=()
command -v npm >/dev/null 2>&1 || missing+=(npm)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
if ((${#missing[@]} == 0)); then
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "browser-deps: install ${missing[*]} yourself" >&2; exit 1; }
as_root=()
[[ $(id -u) -eq 0 ]] || as_root=(sudo)
echo "browser-deps: installing ${missing[*]} with apt-get"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
