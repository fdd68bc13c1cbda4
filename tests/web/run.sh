#!/usr/bin/env bash
# The clinic web app in a real browser (issue 20): builds apps/fq-web (scripts/web-build.sh),
# classifies the demo's test images natively (`fq-classify --json --backend cpu`), then runs
# tests/web/test.mjs in headless Chromium, which compares the page's predictions with those.
#
# Installs what it needs when missing (idempotent): Debian's chromium, nodejs and npm; the
# pinned playwright-core (tests/web/package-lock.json; it drives the system Chromium, it never
# downloads a browser); the wasm32 target and wasm-bindgen-cli (by web-build.sh). It uses the
# demo run's model (runs/demo) when there is one; without it (a fresh CI machine) it makes a
# small real demo run for the test (160 images, width 4, 1 epoch: ~1 min) and exports that.
# First, the runtime's unit tests as WebAssembly with SIMD128 under Node (kernel-wasm.sh).
#
# Usage: tests/web/run.sh [--photos N]   (default: all of the demo's test split)
#   FQ_WEB_MODEL=path.fqm picks the model; FQ_WEB_OUT=dir keeps the results (default target/web-test);
#   FQ_WEB_GPU_PHOTOS=N photos on WebGPU (default 8: SwiftShader takes ~2 s a photo);
#   FQ_COMPRESS / FQ_CLASSIFY: binaries already built (else cargo builds them).
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
    # A small demo run of its own (the whole pipeline: data, training, methods, report), then
    # its uniform 4-bit export: the parity test needs a real exported model, not a good one.
    small="$target_dir/web-test/demo-small"
    model="$small/model-u4.fqm"
    t=$SECONDS
    if [ ! -f "$model" ]; then
        # FQ_COMPRESS: a binary already built (scripts/test.sh passes the workspace's), since
        # `cargo build -p` alone resolves other features and would rebuild the runtime.
        fq_compress=("${FQ_COMPRESS:-}")
        [ -x "${FQ_COMPRESS:-}" ] || fq_compress=(cargo run --release -p fq-compress --)
        "${fq_compress[@]}" demo --out "$small" --num-images 160 --width 4 --epochs 1 --quiet
        "${fq_compress[@]}" export "$small" --method ptq-u4
    fi
    echo "tests/web: the small demo model took $((SECONDS - t)) s"
fi
echo "tests/web: model $model"

t=$SECONDS
tests/web/kernel-wasm.sh
echo "tests/web: the runtime's unit tests as wasm took $((SECONDS - t)) s"

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
fq_classify="${FQ_CLASSIFY:-$target_dir/release/fq-classify}"
[ -x "${FQ_CLASSIFY:-}" ] || cargo build --release -p fq-classify
# One thread: the browser path runs on one, and the figures compare like with like.
RAYON_NUM_THREADS=1 xargs "$fq_classify" --json --quiet --backend cpu -k 1000 --model "$model" \
    < "$out/photos.txt" > "$out/native.json"
# The demo model carries 8-bit activation scales: the page's CPU path runs them as the native CPU
# path does, but WebGPU computes in f32, so its reference is the native f32 path.
RAYON_NUM_THREADS=1 xargs "$fq_classify" --json --quiet --backend cpu --activations f32 -k 1000 \
    --model "$model" < "$out/photos.txt" > "$out/native-f32.json"
echo "tests/web: native reference ($(wc -l < "$out/photos.txt") photos) took $((SECONDS - t)) s"

status=0
# cpu: every photo; gpu: WebGPU on Chromium's SwiftShader (a CPU emulation, ~2 s a photo), so
# the first FQ_WEB_GPU_PHOTOS (8).
for backend in cpu gpu; do
    t=$SECONDS
    shot=()
    [ "$backend" = cpu ] && shot=(--screenshot "$out/result-page.png" --badinput 1 --offline 1)
    [ "$backend" = gpu ] && shot=(--limit "${FQ_WEB_GPU_PHOTOS:-8}")
    native="$out/native.json"
    [ "$backend" = gpu ] && native="$out/native-f32.json"
    node tests/web/test.mjs --www apps/fq-web/www --native "$native" --backend "$backend" \
        --out "$out/$backend.json" "${shot[@]}" || status=1
    echo "tests/web: browser test ($backend) took $((SECONDS - t)) s"
done
echo "tests/web: total $((SECONDS - start)) s"
exit $status
