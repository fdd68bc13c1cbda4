#!/usr/bin/env bash
# Browser figures of the clinic web app (issue 20): per-photo latency of the demo model and of
# ResNet18-224 (random weights, uniform 4-bit) in headless Chromium on the wasm CPU path and on
# WebGPU (SwiftShader here: a CPU emulation), onnxruntime-web (npm, served locally) on the ONNX
# export of the same ResNet18, and the native CPU path with one thread on the same files, all
# in one run. Writes the "Browser (headless Chromium)" section of bench/results.md (other
# sections are kept) and target/web-bench/result.json. Not part of scripts/test.sh.
#
# Usage: bench/web.sh [N]   (N timed photos per case on the CPU paths, default 30)
#   Needs the demo run (runs/demo, `cargo run --release -p fq-compress -- demo`); installs the
#   rest as tests/web/run.sh does, plus onnxruntime-web (bench/web/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-30}"
warm=2
target_dir="${CARGO_TARGET_DIR:-target}"
out="$target_dir/web-bench"
model=runs/demo/model-u4.fqm
[ -f "$model" ] || cargo run --release -p fq-compress -- export runs/demo --method ptq-u4
mkdir -p "$out"

command -v chromium >/dev/null || scripts/apt-install.sh chromium
[ -d tests/web/node_modules/playwright-core ] || (cd tests/web && npm ci --no-audit --no-fund)
[ -d bench/web/node_modules/onnxruntime-web ] || (cd bench/web && npm ci --no-audit --no-fund)
scripts/web-build.sh "$model"

# ResNet18-224 as .fqm and .onnx, and a 224x224 photo (written once).
[ -f "$out/models/resnet18-u4.onnx" ] \
    || cargo run --release -p fq-e2e --example web_models -- "$out/models"

# Native CPU, one thread, on the files the page gets (the first photos of the demo's test split;
# the ResNet18 photo N + warm-up times).
cargo build --release -p fq-classify
run_dir="$(dirname "$model")"
# (awk stops by itself: `| head` would end it with SIGPIPE, an error under pipefail)
awk -F, -v d="$run_dir/data/images" -v m=$((n + warm)) \
    '$2 == "test" { print d "/" $1 ".png"; if (++c == m) exit }' "$run_dir/split.csv" > "$out/demo-photos.txt"
classify() {
    RAYON_NUM_THREADS=1 xargs "$target_dir/release/fq-classify" --json --quiet --backend cpu -k 3 --model "$1"
}
classify "$model" < "$out/demo-photos.txt" > "$out/native-demo.json"
for _ in $(seq $((n + warm))); do echo "$out/models/photo-224.png"; done | classify "$out/models/resnet18-u4.fqm" > "$out/native-resnet.json"

# One local site: the app, the models, onnxruntime-web's files and its page.
site="$out/site"
rm -rf "$site" && mkdir -p "$site"
ln -s "$PWD/apps/fq-web/www" "$site/app"
ln -s "$(realpath "$out/models")" "$site/models"
ln -s "$PWD/bench/web/node_modules/onnxruntime-web/dist" "$site/ort"
cp bench/web/ort.html "$site/ort.html"

node tests/web/bench.mjs --site "$site" --n "$n" --demo-photos "$out/demo-photos.txt" \
    --resnet-photo "$out/models/photo-224.png" --native-demo "$out/native-demo.json" \
    --native-resnet "$out/native-resnet.json" --out "$out/result.json" --md bench/results.md
