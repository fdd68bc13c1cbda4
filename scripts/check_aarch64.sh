#!/usr/bin/env bash
# The runtime on ARM and the other platforms clinics use (issue 23). Called by scripts/test.sh.
#   FQ_CLASSIFY=path/to/native/fq-classify scripts/check_aarch64.sh
# 1. Cross-compiles fq-runtime (CPU path, no wgpu) and fq-classify for aarch64-unknown-linux-gnu
#    and runs the runtime's unit tests under qemu-user twice: QEMU_CPU=cortex-a53 (NEON without
#    the dot-product extension: the SMLAL int8 kernel) and cortex-a76 (with it: SDOT). The log
#    must name the expected kernel paths, or the step fails.
# 2. Parity: fq-classify --json on the committed model and photo (apps/fq-classify/tests/data/
#    parity), natively (x86-64, $FQ_CLASSIFY) and under qemu on both cores: the same classes in
#    the same order, logits within 1e-5 of the largest |logit|.
# 3. `cargo check` (no linking, so no cross linker or SDK) of fq-runtime with its wgpu feature and
#    fq-classify for Android, iOS, macOS on Apple silicon and Windows, in one cargo invocation.
# Idempotent setup: the cross gcc (the linker), the arm64 libc and qemu-user from Debian, and
# the rustup targets, only when missing. qemu timings mean nothing; see bench/results.md.
# Cost from a clean state (the native build done), measured 2026-12-01 on the shared 2-core dev
# machine: 586 s of CPU in all (775 s with the aarch64 build at opt-level 3); 15 min of wall time
# there at a load of 5-8, about half of it the cargo check of the four targets.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
# CPU seconds used by this script's finished children so far (user + system, fields 16 and 17
# of /proc/<pid>/stat), so each step's cost can be read apart from the machine's load.
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{ printf "%d", ($16 + $17) / t }' "/proc/$$/stat"; }
step_cpu=$(cpu)
took() {
    local now
    now=$(cpu)
    echo "check_aarch64: $1 took $((SECONDS - $2)) s ($((now - step_cpu)) s of CPU)"
    step_cpu=$now
}

arm=aarch64-unknown-linux-gnu
checked=(aarch64-linux-android aarch64-apple-ios aarch64-apple-darwin x86_64-pc-windows-msvc)

# --- setup -------------------------------------------------------------------------------------
t=$SECONDS
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
if [ ${#missing[@]} -gt 0 ]; then
    echo "check_aarch64: installing ${missing[*]}"
    scripts/apt-install.sh "${missing[@]}"
fi
installed="$(rustup target list --installed)"
add=()
for target in "$arm" "${checked[@]}"; do
    grep -qx "$target" <<<"$installed" || add+=("$target")
done
[ ${#add[@]} -eq 0 ] || rustup target add "${add[@]}"
took setup "$t"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# The cross artifacts live in target/<triple>/ beside the native ones, so the host's proc macros
# and build scripts from the native build are reused; features are part of every artifact's
# hash, so the CPU-only runtime here and the wgpu one of the native build do not evict each other.
target_dir="${CARGO_TARGET_DIR:-target}"

# --- 1. build for aarch64, run the kernel tests on two emulated cores ---------------------------
# This build checks correctness, not speed (qemu's timings mean nothing), so it is compiled at
# opt-level 1, which costs less CPU time than the release profile's 3: the kernels are the same
# instructions (intrinsics and asm) and no opt-level reorders float arithmetic in Rust.
arm_cargo() { CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo "$@"; }
t=$SECONDS
arm_cargo test --release -p fq-runtime --no-default-features --target "$arm" --lib --no-run
arm_cargo build --release -p fq-classify --no-default-features --target "$arm"
took "aarch64 build" "$t"

t=$SECONDS
log="$(mktemp)"
trap 'rm -f "$log" "$log".*' EXIT
# expect CPU INT8_PATH INT8_KERNELS_CHECKED
expect() {
    local cpu=$1 int8=$2 checked=$3
    echo "check_aarch64: fq-runtime's unit tests under qemu-aarch64, QEMU_CPU=$cpu"
    QEMU_CPU=$cpu arm_cargo test --release -p fq-runtime --no-default-features --target "$arm" --lib \
        -- --nocapture 2>&1 | tee "$log"
    grep -E "^test result: ok\." "$log" >/dev/null
    grep -E "f32 micro-kernel path: neon|int8 micro-kernel path|int8 kernels checked" "$log" \
        | sed 's/^test .* \.\.\. //' | sort -u
    for want in "f32 micro-kernel path: neon" "int8 micro-kernel path: $int8" \
        "int8 kernels checked bit for bit: $checked"; do
        if ! grep -q "$want" "$log"; then
            echo "check_aarch64: QEMU_CPU=$cpu: expected '$want' in the test log" >&2
            exit 1
        fi
    done
}
expect cortex-a53 neon-smlal "neon-smlal, portable"
expect cortex-a76 neon-sdot "neon-sdot, neon-smlal, portable"
took "qemu unit tests" "$t"

# --- 2. parity of a packed model: native x86-64 against aarch64 under qemu ----------------------
t=$SECONDS
fixture=apps/fq-classify/tests/data/parity
native="${FQ_CLASSIFY:-}"
if [ -z "$native" ]; then
    cargo build --release -p fq-classify
    native="$target_dir/release/fq-classify"
fi
classify=(--model "$fixture/model.fqm" "$fixture/photo.png" --backend cpu --top-k 100 --json --quiet)
"$native" "${classify[@]}" >"$log.x86"
for cpu in cortex-a53 cortex-a76; do
    QEMU_CPU=$cpu qemu-aarch64 -L /usr/aarch64-linux-gnu \
        "$target_dir/$arm/release/fq-classify" "${classify[@]}" >"$log.$cpu"
done
python3 - "$log.x86" "$log.cortex-a53" "$log.cortex-a76" <<'EOF'
import json, sys

TOL = 1e-5  # of the largest |logit|: the kernels sum in the same order, with fused multiply-adds
ref = json.load(open(sys.argv[1]))
def summary(doc):
    p = doc["photos"][0]
    return doc["kernels"], [d["class"] for d in p["top"]], p["logits"]
k0, c0, l0 = summary(ref)
print(f"parity: x86-64 ({k0['f32']}, int8 {k0['int8']}): classes {c0}, logits {l0}")
scale = max(1.0, max(abs(x) for x in l0))
for path in sys.argv[2:]:
    k, c, l = summary(json.load(open(path)))
    diff = max(abs(a - b) for a, b in zip(l, l0))
    print(f"parity: {k['arch']} ({k['f32']}, int8 {k['int8']}): classes {c}, "
          f"max |logit difference| {diff:.3g} (tolerance {TOL * scale:.3g})")
    assert k["arch"] == "aarch64" and k["f32"] == "neon", k
    assert c == c0, f"classes differ: {c} vs {c0}"
    assert len(l) == len(l0) and diff <= TOL * scale, f"logits differ: {l} vs {l0}"
EOF
took "packed-model parity" "$t"

# --- 3. the other platforms: cargo check, no linking --------------------------------------------
t=$SECONDS
target_flags=()
for target in "${checked[@]}"; do target_flags+=(--target "$target"); done
cargo check --release -p fq-runtime -p fq-classify --features fq-runtime/wgpu "${target_flags[@]}"
took "cargo check for ${checked[*]}" "$t"

step_cpu=0
took "the aarch64 and platform checks" "$start"
