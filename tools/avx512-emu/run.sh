#!/usr/bin/env bash
# Run a static x86-64 Linux binary on an emulated CPU with AVX-512 + VNNI.
#
# WHY: the development machine (AMD EPYC, AVX2 only) cannot execute AVX-512,
# and QEMU's TCG does not implement it. Bochs (Debian 12 package, 2.7) does:
# its `tigerlake` CPU model has AVX-512F/BW/VL/VNNI. This script boots the
# Debian kernel in Bochs (headless) from a tiny ISO whose initramfs runs the
# given binary as the only program, captures its output from the serial
# console and returns its exit code. Developer tool only: far too slow for CI.
#
# Usage:
#   tools/avx512-emu/run.sh [-e VAR=VALUE]... <static-binary> [args...]
#   tools/avx512-emu/run.sh --selfcheck     # builds and runs selfcheck.rs
#
# Environment knobs:
#   AVX512_EMU_MODEL    Bochs CPU model (default tigerlake)
#   AVX512_EMU_MEGS     guest RAM in MB (default 512)
#   AVX512_EMU_TIMEOUT  wall-clock limit in seconds (default 3600)
#   AVX512_EMU_IPS      Bochs ips (emulated instructions per emulated second;
#                       only scales guest time, default 100000000)
#   AVX512_EMU_KERNEL   Debian kernel flavour (default cloud-amd64; or amd64)
#   AVX512_EMU_APPEND   extra kernel command line words
#   AVX512_EMU_VERBOSE=1 show all kernel messages (boot debugging)
#   AVX512_EMU_CACHE    where the kernel is kept (default /var/cache/fq-avx512-emu)
#   AVX512_EMU_KEEP=1   keep the work directory (bochsrc, serial and bochs logs)
#
# Exit code: the binary's exit code; 124 on timeout; 125 when the guest
# failed (kernel panic, binary missing, no result marker).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL="${AVX512_EMU_MODEL:-tigerlake}"
MEGS="${AVX512_EMU_MEGS:-512}"
TIMEOUT="${AVX512_EMU_TIMEOUT:-3600}"
IPS="${AVX512_EMU_IPS:-100000000}"
CACHE="${AVX512_EMU_CACHE:-/var/cache/fq-avx512-emu}"
MARK="@@AVX512EMU"

die() { echo "avx512-emu: $*" >&2; exit 125; }
log() { echo "avx512-emu: $*" >&2; }

# ---- 1. host dependencies (idempotent) -------------------------------------
ensure_deps() {
  local need=()
  command -v bochs >/dev/null || need+=(bochs)
  [ -f /usr/share/bochs/BIOS-bochs-latest ] || need+=(bochsbios)
  [ -f /usr/share/vgabios/vgabios.bin ] || need+=(vgabios)
  [ -f /usr/lib/ISOLINUX/isolinux.bin ] || need+=(isolinux)
  [ -f /usr/lib/syslinux/modules/bios/ldlinux.c32 ] || need+=(syslinux-common)
  command -v xorriso >/dev/null || need+=(xorriso)
  command -v cpio >/dev/null || need+=(cpio)
  # busybox-static provides /bin/busybox statically linked (the guest has no libc).
  if ! { [ -x /bin/busybox ] && file -L /bin/busybox | grep -q 'statically linked'; }; then
    need+=(busybox-static)
  fi
  command -v file >/dev/null || need+=(file)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# The Debian kernel is downloaded and unpacked, never installed: the host's
# boot setup stays untouched. Its 8250 serial driver and initramfs support
# are built in, so no modules are needed. The cloud flavour is the default
# because it is LZ4-compressed: the generic kernel is XZ-compressed and its
# decompression alone takes about 2 minutes on the emulated CPU.
KFLAVOR="${AVX512_EMU_KERNEL:-cloud-amd64}"
KERNEL="$CACHE/vmlinuz-$KFLAVOR"
ensure_kernel() {
  if [ -f "$KERNEL" ]; then return; fi
  mkdir -p "$CACHE"
  local pkg tmp
  pkg="$(apt-cache depends "linux-image-$KFLAVOR" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')"
  [ -n "$pkg" ] || die "cannot resolve the kernel package behind linux-image-$KFLAVOR (apt-get update?)"
  tmp="$(mktemp -d)"
  log "downloading $pkg (kernel only, not installed)"
  (cd "$tmp" && apt-get download -q "$pkg" 2>&1 | grep -v unsandboxed >&2 || true)
  dpkg-deb --fsys-tarfile "$tmp"/"$pkg"_*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*'
  mv "$tmp"/boot/vmlinuz-* "$KERNEL.part" && mv "$KERNEL.part" "$KERNEL"
  echo "$pkg" > "$KERNEL.package"
  rm -rf "$tmp"
}

# ---- 2. arguments ----------------------------------------------------------
ENVS=()
while [ $# -gt 0 ]; do
  case "$1" in
    -e) [ $# -ge 2 ] || die "-e needs VAR=VALUE"; ENVS+=("$2"); shift 2 ;;
    --selfcheck)
      shift
      command -v rustc >/dev/null || die "--selfcheck needs rustc"
      SC="$(mktemp -d)"
      rustc -O --edition 2021 -C target-feature=+crt-static -o "$SC/selfcheck" "$HERE/selfcheck.rs"
      set +e; AVX512_EMU_MEGS="${AVX512_EMU_MEGS:-256}" "$0" "$SC/selfcheck"; rc=$?; set -e
      rm -rf "$SC"; exit $rc ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die "usage: $0 [-e VAR=VALUE]... <static-binary> [args...] | --selfcheck"
BIN="$1"; shift
[ -f "$BIN" ] || die "no such file: $BIN"

ensure_deps
ensure_kernel
# A dynamically linked binary would fail inside the guest with a confusing
# "not found": the initramfs has no loader and no libc.
if file -L "$BIN" | grep -q 'dynamically linked'; then
  die "$BIN is dynamically linked; build with RUSTFLAGS='-C target-feature=+crt-static' --target x86_64-unknown-linux-gnu"
fi

WORK="$(mktemp -d /tmp/avx512-emu.XXXXXX)"
BOCHS_PID=""
cleanup() {
  if [ -n "$BOCHS_PID" ] && kill -0 "$BOCHS_PID" 2>/dev/null; then
    kill "$BOCHS_PID" 2>/dev/null || true
    wait "$BOCHS_PID" 2>/dev/null || true
  fi
  if [ "${AVX512_EMU_KEEP:-0}" = 1 ]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 3. initramfs: busybox + the binary + an /init that runs it ------------
# Single-quote a word for /bin/sh (busybox ash).
shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,dev,proc,sys,tmp}
cp /bin/busybox "$ROOT/bin/busybox"
cp "$BIN" "$ROOT/bin/prog"; chmod 755 "$ROOT/bin/prog"
mknod "$ROOT/dev/console" c 5 1 2>/dev/null || true
{
  echo '#!/bin/busybox sh'
  echo '/bin/busybox mount -t proc proc /proc'
  echo '/bin/busybox mount -t sysfs sysfs /sys'
  echo '/bin/busybox mount -t devtmpfs devtmpfs /dev'
  echo 'export PATH=/bin HOME=/tmp TMPDIR=/tmp'
  for kv in "${ENVS[@]+"${ENVS[@]}"}"; do echo "export $(shq "$kv")"; done
  echo 'cd /tmp'
  printf 'echo "%s-START@@"\n' "$MARK"
  printf '/bin/prog'; for a in "$@"; do printf ' %s' "$(shq "$a")"; done; printf '\n'
  printf 'echo "%s-EXIT=$?@@"\n' "$MARK"
  # The marker may still sit in the tty buffer: give the UART time to drain
  # (the host stops Bochs as soon as it sees the marker anyway).
  echo '/bin/busybox sleep 5'
  echo '/bin/busybox poweroff -f'
} > "$ROOT/init"
chmod 755 "$ROOT/init"
# Uncompressed: decompressing in the emulated CPU costs more than reading it.
(cd "$ROOT" && find . | cpio -o -H newc --quiet) > "$WORK/initrd.cpio"

# ---- 4. boot ISO (isolinux) ---------------------------------------------------
ISO_DIR="$WORK/iso"
mkdir -p "$ISO_DIR/isolinux"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$ISO_DIR/isolinux/"
cp "$KERNEL" "$ISO_DIR/vmlinuz"
mv "$WORK/initrd.cpio" "$ISO_DIR/initrd.cpio"
# quiet: fewer serial bytes (the emulated UART is slow); lpj skips the delay
# loop calibration; panic=0 keeps a panicking guest halted (the watcher sees it).
if [ -n "${AVX512_EMU_VERBOSE:-}" ]; then
  VERB="earlyprintk=serial,ttyS0,115200 ignore_loglevel"
else
  VERB="quiet loglevel=3"
fi
# clearcpuid works around Bochs 2.7 CPUID bugs seen with Linux 6.1 on the
# tigerlake model (AVX-512 stays on, the program sees the same CPUID bits):
#  - pku,ospke: CPUID.(0xD,9) reports PKRU state size 0, so the kernel's
#    XSAVE layout check fails and it disables XSAVE, i.e. AVX and AVX-512;
#  - xsaves,xsavec: CPUID.(0xD,1).EBX gives the standard, not the compacted
#    size, same failure; without them the kernel uses the standard format;
#  - fsrm (fast short REP MOVSB): with it the kernel loops in page
#    faults (about 1M instructions/s, never finishes LSM init).
CLEAR="${AVX512_EMU_CLEAR:-pku,ospke,xsaves,xsavec,fsrm}"
CMDLINE="console=ttyS0,115200 $VERB clearcpuid=$CLEAR lpj=1000000 tsc=reliable panic=0 nokaslr mitigations=off ${AVX512_EMU_APPEND:-}"
cat > "$ISO_DIR/isolinux/isolinux.cfg" <<EOF
default run
prompt 0
timeout 0
label run
  kernel /vmlinuz
  append initrd=/initrd.cpio $CMDLINE
EOF
xorriso -as mkisofs -quiet -o "$WORK/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table "$ISO_DIR" 2>/dev/null
rm -rf "$ISO_DIR" "$ROOT"

# ---- 5. Bochs -----------------------------------------------------------------
cat > "$WORK/bochsrc" <<EOF
megs: $MEGS
cpu: model=$MODEL, count=1, ips=$IPS, reset_on_triple_fault=0
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
pci: enabled=1, chipset=i440fx
ata0-master: type=cdrom, path=$WORK/boot.iso, status=inserted
boot: cdrom
clock: sync=none, time0=local
display_library: rfb, options="timeout=0"
speaker: enabled=0
sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy
com1: enabled=1, mode=file, dev=$WORK/serial.log
log: $WORK/bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
mouse: enabled=0
EOF
: > "$WORK/serial.log"
# Debian builds Bochs with its debugger, which stops at the first
# instruction: this debugger script just continues.
# Many "c" lines: each SIGINT to bochs-bin prints "Next at t=<ticks>" and
# continues (handy to sample the emulation speed); at EOF Bochs would stop.
printf 'c\n%.0s' $(seq 1000) > "$WORK/dbgrc"
log "booting $(basename "$BIN") on Bochs cpu=$MODEL, ${MEGS} MB, timeout ${TIMEOUT}s"
T0=$(date +%s)
timeout -s TERM "$TIMEOUT" bochs-bin -q -f "$WORK/bochsrc" -rc "$WORK/dbgrc" </dev/null >"$WORK/bochs.out" 2>&1 &
BOCHS_PID=$!

# Stream the program's output (between the markers) while it runs; stop
# Bochs as soon as the exit marker or a kernel panic shows up.
# (\r is removed inside awk: a `tr` in the pipe would hold lines in its buffer.)
tail --pid="$BOCHS_PID" -n +1 -f "$WORK/serial.log" | awk -v mark="$MARK" -v pid="$BOCHS_PID" -v rcf="$WORK/rc" '
  { gsub(/\r/, "") }
  index($0, mark "-EXIT=") { s = $0; sub(".*" mark "-EXIT=", "", s); sub("@@.*", "", s);
                             print s > rcf; close(rcf); system("kill " pid " 2>/dev/null"); exit }
  index($0, mark "-START@@") { on = 1; next }
  /Kernel panic|end Kernel panic/ { print "avx512-emu: guest: " $0 > "/dev/stderr"; print "panic" > rcf; close(rcf);
                                    system("kill " pid " 2>/dev/null"); exit }
  on { print; fflush() }
  !on && /[^ ]/ { print "avx512-emu: guest: " $0 > "/dev/stderr" }
' || true
set +e; wait "$BOCHS_PID"; BRC=$?; set -e
BOCHS_PID=""
T1=$(date +%s)
RC="$(cat "$WORK/rc" 2>/dev/null || true)"
# Bochs prints its own speed estimate only in some builds; report what we know.
log "wall time $((T1 - T0)) s (boot + run)"
if [[ "$RC" =~ ^[0-9]+$ ]]; then
  exit "$RC"
elif [ "$BRC" = 124 ]; then
  log "timeout after ${TIMEOUT}s (AVX512_EMU_TIMEOUT); last bochs log lines:"; tail -5 "$WORK/bochs.log" >&2 || true
  exit 124
else
  log "guest ended without a result (${RC:-no marker}); bochs exit $BRC; bochs log tail:"
  tail -15 "$WORK/bochs.log" >&2 || true; tail -5 "$WORK/bochs.out" >&2 || true
  exit 125
fi
