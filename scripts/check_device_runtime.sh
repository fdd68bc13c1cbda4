#!/usr/bin/env bash
# The device runtime stays slim (issue 17): fq-runtime without default features builds for
# wasm32-unknown-unknown (a browser or phone build can link it) and its dependency tree holds
# none of the evaluation crates (csv, plotters, clap, rand), which belong to fq-eval.
# Idempotent: the wasm32 target is added only when missing. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    rustup target add wasm32-unknown-unknown
fi
# clippy, not only check: lints that only fire where usize has 32 bits surface here.
cargo clippy --release -p fq-runtime --no-default-features --target wasm32-unknown-unknown -- -D warnings

forbidden='^(csv|plotters|clap|rand|rand_chacha|rand_core|getrandom)$'
found="$(cargo tree -p fq-runtime --no-default-features -e normal --prefix none \
    | sed 's/ v.*//' | sort -u | grep -E "$forbidden" || true)"
if [ -n "$found" ]; then
    echo "fq-runtime's dependency tree holds evaluation crates: $found" >&2
    echo "(they belong to fq-eval; see runtime/Cargo.toml)" >&2
    exit 1
fi
echo "fq-runtime: builds for wasm32-unknown-unknown; no csv/plotters/clap/rand in its tree"
