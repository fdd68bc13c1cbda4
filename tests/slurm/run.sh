#!/usr/bin/env bash
# `fq-compress sweep --plan`'s job array on a real Slurm: installs Debian's Slurm (slurmctld,
# slurmd, munge), starts a one-node cluster on loopback in a temporary directory (its own munge
# socket and ports, nothing under /etc touched), submits sweep.sbatch for a tiny grid, waits,
# runs --collect and checks that the tables equal the sequential sweep's on a copy of the run.
# Every daemon it started is stopped on exit, also on failure. Needs root (CI runs as root).
#
#   tests/slurm/run.sh            # builds fq-compress (release) unless FQ_COMPRESS is set
#   KEEP=1 tests/slurm/run.sh     # keep the temporary directory (logs, run) for a look
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
log() { echo "tests/slurm: [$(($(date +%s) - start))s] $*"; }

# --- Slurm and munge from Debian (skipped when present) ---------------------------------------
need=()
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v munged >/dev/null || need+=(munge)
command -v sbatch >/dev/null || need+=(slurm-client)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  scripts/apt-install.sh "${need[@]}"
fi
if [ "$(id -u)" != 0 ]; then
  echo "tests/slurm: must run as root (slurmd starts the jobs; SlurmUser=root)" >&2
  exit 1
fi

if [ -z "${FQ_COMPRESS:-}" ]; then
  cargo build --release -q -p fq-compress --bin fq-compress
  FQ_COMPRESS="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/fq-compress"
fi
[ -x "$FQ_COMPRESS" ] || { echo "tests/slurm: FQ_COMPRESS=$FQ_COMPRESS is not an executable" >&2; exit 1; }
fq() { "$FQ_COMPRESS" --quiet "$@"; }

# --- A one-node cluster in a temporary directory -----------------------------------------------
T=$(mktemp -d /tmp/fq-slurm.XXXXXX)
chmod 755 "$T"
pids=()
cleanup() {
  rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    scancel --full --quiet --user root 2>/dev/null || true
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ "$rc" != 0 ]; then
    echo "tests/slurm: FAILED (exit $rc); daemon logs:" >&2
    tail -n 30 "$T"/log/*.log "$T"/log/*.out 2>/dev/null >&2 || true
    tail -n 30 "$T"/run/sweep/logs/*.out 2>/dev/null >&2 || true
  fi
  if [ -n "${KEEP:-}" ]; then echo "tests/slurm: kept $T"; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT

# Free ports, so that a cluster already on this machine (or a second copy of this test) is left
# alone.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
ctld_port=$(free_port)
d_port=$(free_port)
while [ "$d_port" = "$ctld_port" ]; do d_port=$(free_port); done

mkdir -p "$T/munge" "$T/key" "$T/state" "$T/spool" "$T/log"
chmod 700 "$T/key"
chmod 755 "$T/munge"
head -c 1024 /dev/urandom >"$T/key/munge.key"
chmod 400 "$T/key/munge.key"
munged -F --force --key-file="$T/key/munge.key" --socket="$T/munge/munge.socket" \
  --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/munged.seed" \
  --log-file="$T/log/munged.log" >"$T/log/munged.out" 2>&1 &
pids+=($!)

host=$(hostname -s)
cat >"$T/slurm.conf" <<EOF
ClusterName=fqtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
# No cgroups: containers rarely let a job manager create them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"

for i in $(seq 50); do
  [ -S "$T/munge/munge.socket" ] && break
  sleep 0.2
done
slurmctld -D -f "$SLURM_CONF" >"$T/log/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$T/log/slurmd.out" 2>&1 &
pids+=($!)
for i in $(seq 60); do
  state=$(sinfo -h -N -o %t 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
[ "$state" = idle ] || { echo "tests/slurm: node not idle after 30 s (state: '$state')" >&2; exit 1; }
log "Slurm $(sinfo --version | cut -d' ' -f2) up: node $host, ports $ctld_port/$d_port"

# --- A tiny run (as compressor/tests/sweep_cells.rs) and its sweep two ways ---------------------
fq synth --out "$T/data" --num-images 200 --image-size 32 >/dev/null
fq train --run-dir "$T/run" --csv "$T/data/fitzpatrick17k.csv" --images "$T/data/images" \
  --arch resnet18 --width 4 --input-size 32 --epochs 1 --batch-size 64 >/dev/null
cp -a "$T/run" "$T/seq"
grid=(--seeds 3,4 --methods fq-qat,fq-baq --no-official-code --lambda-bit 0.001
  --epochs 1 --calib-batches 1)
log "trained the run; planning"

fq sweep --run-dir "$T/run" "${grid[@]}" --plan --exe "$FQ_COMPRESS" \
  --slurm-cpus 1 --slurm-mem 500M --slurm-time 00:20:00 >/dev/null
script="$T/run/sweep/sweep.sbatch"
cells=$(wc -l <"$T/run/sweep/plan.txt")
grep -q "^#SBATCH --array=0-$((cells - 1))$" "$script"
# Slurm refuses to collect early: --collect must fail and name the missing cells.
if fq sweep --run-dir "$T/run" --collect 2>"$T/early.err"; then
  echo "tests/slurm: --collect passed before any cell ran" >&2
  exit 1
fi
grep -q "$cells of $cells cells" "$T/early.err"

log "submitting $cells cells (2 CPUs, 1 per task: two at once)"
job=$(sbatch --parsable "$script")
# Poll (sbatch --wait backs off to ~30 s between checks: too slow for a test).
for i in $(seq 900); do
  [ -z "$(squeue -h -j "$job" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$job")" ] || { echo "tests/slurm: job $job still queued after 15 min" >&2; exit 1; }
# Finished tasks stay in the controller for MinJobAge (300 s): every one must have completed.
states=$(scontrol show job "$job" | grep -o 'JobState=[A-Z_]*' | sort | uniq -c)
[ "$(echo "$states" | grep -c .)" = 1 ] && echo "$states" | grep -q "$cells JobState=COMPLETED" ||
  { echo "tests/slurm: array $job task states: $states" >&2; exit 1; }
for ((n = 0; n < cells; n++)); do
  grep -q "cell $n (.*) finished in" "$T/run/sweep/logs/cell-$n.out" ||
    { echo "tests/slurm: cell $n did not finish; its log:" >&2; cat "$T/run/sweep/logs/cell-$n.out" >&2; exit 1; }
done
log "array finished; collecting"
fq sweep --run-dir "$T/run" --collect >/dev/null

log "sequential sweep on the copy"
fq sweep --run-dir "$T/seq" "${grid[@]}" >/dev/null
cmp "$T/run/sweep/results.json" "$T/seq/sweep/results.json"
for f in table1.md ablations.md; do
  diff <(tail -n +2 "$T/run/sweep/$f") <(tail -n +2 "$T/seq/sweep/$f")
done
rows=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["rows"]))' "$T/run/sweep/results.json")
log "OK: $cells cells on Slurm, $rows rows; results.json, table1.md and ablations.md equal the sequential sweep's"
