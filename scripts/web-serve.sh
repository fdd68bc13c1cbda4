#!/usr/bin/env bash
# Serves the built clinic web app (scripts/web-build.sh) at http://127.0.0.1:${1:-8080}/ on
# this machine only. Static files: the server runs no code of ours and receives no photo.
set -euo pipefail
cd "$(dirname "$0")/../apps/fq-web/www"
exec python3 -m http.server --bind 127.0.0.1 "${1:-8080}"
