#!/usr/bin/env bash
# The clinic web app in a real browser (issue 20): builds apps/fq-web (scripts/web-build.sh),
# classifies the demo's test images natively (`fq-classify --json --backend cpu`), then runs
# tests/web/test.mjs in headless Chromium, which compares the page's predictions with those.
#
# Installs what it needs when missing (idempotent): Debian's chromium, nodejs and npm; the
# pinned playwright-core (tests/web/package-lock.json; it drives the system Chromium, it never
# downloads a browser); the wasm32 target and wasm-bindgen-cli (by web-build.sh). Without a demo
# model it runs `fq-compress demo` first.
#
# Usage: tests/web/run.sh [--photos N]   (default: all of the demo's test split)
#   FQ_WEB_MODEL=path.fqm picks the model; FQ_WEB_OUT=dir keeps the results (default target/web-test).
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
photos_max=0
if [ "${1:-}" = "--photos" ]; then photos_max="$2"; fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "tests/web: installing ${missing[*]}"
    scripts/apt-install.sh "${missing[@]}"
fi
if [ ! -d tests/web/node_modules/playwright-core ]; then
    (cd tests/web && npm ci --no-audit --no-fund)
fi
echo "tests/web: tools ready after $((SECONDS - start)) s"

target_dir="${CARGO_TARGET_DIR:-target}"
model="${FQ_WEB_MODEL:-runs/demo/model-u4.fqm}"
if [ ! -f "$model" ] && [ -z "${FQ_WEB_MODEL:-}" ]; then
    # The demo run (training and nine methods; minutes), then its uniform 4-bit export.
    t=$SECONDS
    [ -f runs/demo/split.csv ] && [ -f runs/demo/fp32.safetensors ] \
        || cargo run --release -p fq-compress -- demo
    cargo run --release -p fq-compress -- export runs/demo --method ptq-u4
    echo "tests/web: the demo model took $((SECONDS - t)) s"
fi
echo "tests/web: model $model"

t=$SECONDS
scripts/web-build.sh "$model"
echo "tests/web: web build took $((SECONDS - t)) s"

out="${FQ_WEB_OUT:-$target_dir/web-test}"
mkdir -p "$out"
# The demo's test split (runs/demo/split.csv), as files.
run_dir="$(dirname "$model")"
awk -F, -v d="$run_dir/data/images" '$2 == "test" { print d "/" $1 ".png" }' "$run_dir/split.csv" > "$out/photos.txt"
if [ "$photos_max" -gt 0 ]; then
    head -n "$photos_max" "$out/photos.txt" > "$out/photos.tmp" && mv "$out/photos.tmp" "$out/photos.txt"
fi
t=$SECONDS
cargo build --release -p fq-classify
# One thread: the browser path runs on one, and the figures compare like with like.
RAYON_NUM_THREADS=1 xargs "$target_dir/release/fq-classify" --json --quiet --backend cpu -k 1000 --model "$model" \
    < "$out/photos.txt" > "$out/native.json"
echo "tests/web: native reference ($(wc -l < "$out/photos.txt") photos) took $((SECONDS - t)) s"

status=0
# cpu: every photo; gpu: WebGPU on Chromium's SwiftShader (a CPU emulation, ~2 s a photo), so
# the first 24 photos.
for backend in cpu gpu; do
    t=$SECONDS
    shot=()
    [ "$backend" = cpu ] && shot=(--screenshot "$out/result-page.png" --badinput 1 --offline 1)
    [ "$backend" = gpu ] && shot=(--limit 24)
    node tests/web/test.mjs --www apps/fq-web/www --native "$out/native.json" --backend "$backend" \
        --out "$out/$backend.json" "${shot[@]}" || status=1
    echo "tests/web: browser test ($backend) took $((SECONDS - t)) s"
done
echo "tests/web: total $((SECONDS - start)) s"
exit $status
