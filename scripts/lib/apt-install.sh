#!/usr/bin/env bash
# Install a Debian package when its command is missing, saying what it does (tests and benchmarks need real
# servers and tools from the machine's packages: redis-server, wrk).
#   scripts/lib/apt-install.sh COMMAND [PACKAGE]     (PACKAGE defaults to COMMAND)
set -euo pipefail
cmd="$1"; pkg="${2:-$1}"
command -v "$cmd" >/dev/null && exit 0
echo "$cmd not found; installing it from Debian packages (apt-get install -y $pkg)"
if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "$pkg" >/dev/null
command -v "$cmd" >/dev/null || { echo "$pkg installed but $cmd is still not on PATH" >&2; exit 1; }
echo "installed $pkg"
