#!/usr/bin/env bash
# Regenerates compressor/src/run/onnx/proto.rs from tools/onnx-proto-gen/onnx.proto (run after
# replacing onnx.proto with a newer one from the `onnx` Python package). Needs only cargo.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../compressor/src/run/onnx/proto.rs"
cargo run --release --quiet --manifest-path "$here/Cargo.toml" --target-dir "$here/target" -- "$out"
rustfmt --edition 2021 "$out"
echo "wrote $out"
