#!/usr/bin/env bash
# The runtime's unit tests compiled to WebAssembly with SIMD128 (wasm32-wasip1, the same
# `+simd128` as scripts/web-build.sh) and run under Node's WASI (tests/web/wasi-run.mjs; V8, the
# engine of Chromium), so the hand-written SIMD128 micro-kernel (runtime/src/exec/kernel/wasm.rs)
# is checked bit for bit against the portable loop as wasm, not only through the page's
# end-to-end parity. The `atomic::` tests write files, which WASI without a filesystem shim
# cannot; they run natively.
#
# A test build, dependencies unoptimised (the workspace's dev profile optimises them, which more
# than doubles this build: 124 s against 268 s fresh, measured contended); FQ_WASM_RELEASE=1
# builds in release instead (for `speed::tile_speed`).
#
# Installs the wasm32-wasip1 target when missing (~4 s). Usage: tests/web/kernel-wasm.sh [FILTER]
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128"
# --single-threaded: no V8 background threads. With them, Node 20.20.2 died by SIGSEGV at exit
# after every test had passed, about one run in six (stop 60: 3 of 16 runs, 2 of 12 at stop 61);
# without them, 0 of 16 at stop 61, the tests no slower (11-12 s).
export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --single-threaded $PWD/tests/web/wasi-run.mjs"
profile=(--config 'profile.dev.package."*".opt-level=0')
[ "${FQ_WASM_RELEASE:-0}" = 1 ] && profile=(--release)
cargo test "${profile[@]}" -p fq-runtime --lib --target wasm32-wasip1 -- --skip atomic:: "$@"
echo "tests/web/kernel-wasm: $((SECONDS - start)) s"
