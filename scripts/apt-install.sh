#!/usr/bin/env bash
# Installs Debian packages for the test scripts on a fresh machine: `apt-get update` once, then
# the packages named, quietly; through sudo when not root. Callers pass only what is missing.
#   scripts/apt-install.sh PACKAGE...
set -euo pipefail
[ $# -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
