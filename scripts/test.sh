#!/usr/bin/env bash
# Runs every FairQuant test on a fresh Debian machine: installs what the tests need (Mesa's
# software Vulkan driver for the wgpu tests), then the whole workspace's tests in the release
# profile (candle in a plain debug build is ~200x slower).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || missing+=(libvulkan1)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || missing+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]}"
  scripts/apt-install.sh "${missing[@]}"
fi

# Mesa warns about an unset runtime dir; give it a private one.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
chmod 700 "$XDG_RUNTIME_DIR"

# The wgpu tests must run here, never skip: lavapipe was installed above.
export FQ_REQUIRE_GPU=1

# A CI machine builds from a clean clone once: incremental compilation (on in the release profile
# for local edit-test loops) only adds work and disk there.
if [ "${CI:-}" = true ]; then
  export CARGO_INCREMENTAL=0
fi

# The house rules (issue 17): formatting and clippy with every lint as an error, on all targets.
# rustfmt and clippy come with rustup's default profile; add them when a minimal one lacks them.
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done
lint_start=$SECONDS
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -- -D warnings
echo "scripts/test.sh: fmt and clippy took $((SECONDS - lint_start)) s"

# onnx + onnxruntime for the ONNX export test (tests/tests/onnx_export.rs; ~20 s the first time).
tools/reference/onnx_venv.sh >/dev/null

# The runtime builds without any graphics stack (the wgpu backend is a cargo feature).
cargo check --release -p fq-runtime --no-default-features
# ... and for wasm32, with no csv/plotters/clap/rand in its dependency tree (issue 17).
scripts/check_device_runtime.sh
# fq-e2e turns fq-runtime's `wgpu` feature on, so the workspace run includes the GPU tests.
cargo_log="$(mktemp)"
cargo test --release --workspace "$@" 2>&1 | tee "$cargo_log"

# ARM (issue 23): the runtime's tests on aarch64 under qemu-user, with and without the
# dot-product extension, a packed-model parity check against the native fq-classify built above,
# and `cargo check` for Android, iOS, macOS and Windows (installs the cross gcc and qemu-user).
FQ_CLASSIFY="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/fq-classify" \
  scripts/check_aarch64.sh 2>&1 | tee -a "$cargo_log"

# The sweep's Slurm job array on a real one-node Slurm (installs Debian's slurmctld, slurmd and
# munge when missing; ~20 s), with the fq-compress binary the tests above built.
FQ_COMPRESS="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/fq-compress" tests/slurm/run.sh

# The fuzz targets (runtime/fuzz) build and run briefly on their seeds (5 s each here, 20 s by
# default when run alone), so they cannot rot;
# nightly and cargo-fuzz are installed when missing (docs/fuzzing.md).
FUZZ_SECONDS="${FUZZ_SECONDS:-5}" scripts/fuzz.sh

# The clinic web app in headless Chromium (issue 20; tests/web/run.sh): the runtime's unit tests
# as wasm with SIMD128, then the page against native fq-classify on the CPU path and WebGPU. On a
# fresh machine it installs Chromium and builds wasm-bindgen-cli, the wasm app and a small demo
# model (measured cost in docs/web/STATUS.md). FQ_WEB_TESTS=0 skips it.
if [ "${FQ_WEB_TESTS:-1}" = 1 ]; then
  web_start=$SECONDS
  bin="$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release"
  FQ_COMPRESS="$bin/fq-compress" FQ_CLASSIFY="$bin/fq-classify" tests/web/run.sh
  echo "scripts/test.sh: the web app step took $((SECONDS - web_start)) s"
fi

# The compressor's CUDA build (issue 22), so it cannot rot: the CUDA 13.0 toolkit from NVIDIA's
# PyPI wheels plus a stub driver (scripts/cuda-toolchain.sh; ~30 s once), then the compressor
# with `--features cuda` and its parity test. No GPU here: the parity test runs against the stub
# driver, which checks that the binaries link and start and that its CUDA tests skip cleanly (the
# CPU harness test of that file ran in the workspace tests above). Building the parity test
# builds the library and the `fq-compress` binary with the feature (the only code behind
# `cfg(feature = "cuda")` is in those and in tests/cuda_parity.rs). In the `cuda-ci` profile
# (Cargo.toml: unoptimised, no debug info), since nothing here runs long: the feature changes
# candle's and so the compressor's whole dependency tree, all of which it builds again: optimised,
# the step took 765 s on a 2-core Zen 3, unoptimised 601-614 s; candle's CUDA kernels (nvcc,
# ~8 minutes, the same in any profile) are the rest.
# candle's kernels are compiled for this check and never run here (no GPU), so nvcc's device
# optimisers (NVVM and ptxas) run at -O0 (nvcc appends NVCC_APPEND_FLAGS to every call): one of
# its GGUF kernels took 28 s instead of 47 on the 2-core Zen 3 of stop 67. A build for the GPU
# (the device machine's, `--release`) sets no such flags.
cuda_start=$SECONDS
(
  eval "$(scripts/cuda-toolchain.sh --stub-run)"
  export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:+$NVCC_APPEND_FLAGS }-Xcicc -O0 -Xptxas -O0"
  cargo test --profile cuda-ci -p fq-compress --features cuda --test cuda_parity -- --skip harness \
    2>&1 | tee -a "$cargo_log"
)
echo "scripts/test.sh: the CUDA build step took $((SECONDS - cuda_start)) s"

# One closing line over every cargo test binary above (the Slurm and fuzz steps exit non-zero on
# failure, which stops this script before it gets here).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$cargo_log"
rm -f "$cargo_log"
