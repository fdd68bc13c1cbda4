#!/usr/bin/env bash
# Builds fq-runtime's fuzz targets (runtime/fuzz, cargo-fuzz on nightly) and runs each one briefly
# on its committed seeds (runtime/fuzz/seeds/<target>), so that the targets cannot rot and a
# regression on the seeds' neighbourhood fails CI. Installs the nightly toolchain and cargo-fuzz
# when missing. Long campaigns: see docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20, or $FUZZ_SECONDS)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-${FUZZ_SECONDS:-20}}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "scripts/fuzz.sh: installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --version 0.13.2 --locked
fi

cd runtime
# The dataset targets write their inputs as files into the temp dir: a private one, removed after.
TMPDIR="$(mktemp -d)"
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
# -a: debug assertions and overflow checks on, so silent wrap-arounds are found too. (16 codegen
# units instead of cargo-fuzz's 1 took more CPU time in all, 327 s against 281 s: not worth it.)
flags=(-a)
cargo +nightly fuzz build "${flags[@]}"
# Largest input per target: a bit above its biggest seed.
declare -A max_len=(
  [fqm_body]=409600
  [dataset_fitzpatrick17k]=32768
  [dataset_isic2019]=16384
  [dataset_folder]=4096
  [image_preprocess]=65536
)
for t in $(cargo +nightly fuzz list); do
  mkdir -p "fuzz/corpus/$t"
  echo "scripts/fuzz.sh: $t for ${secs}s"
  cargo +nightly fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$secs" -max_len="${max_len[$t]:-65536}" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1
done
