#!/usr/bin/env bash
# A real Slurm (docs/cluster.md): starts a one-node cluster on this machine — munged, slurmctld
# and slurmd in the foreground, loopback only, state and spool in a temp folder, stopped by the
# EXIT trap whatever happens — and submits the quickstart as a job array of 3 extraction tasks
# (examples/slurm/extract.sbatch) plus the dependent merge job (merge.sbatch,
# --dependency=afterok), then compares the run folder with a single-process run byte for byte.
# Fault case: task 1 is cancelled mid-run (scancel), requeued (scontrol requeue), resumes its
# part, and the merge (resubmitted: Slurm never satisfies afterok on an array with a cancelled
# task) gives the same bytes again.
# Needs root (the daemons run as root; no cgroups: proctrack/linuxproc, task/none) and Debian's
# slurm-wlm and munge (installed here if missing; scripts/install-deps.sh --tests installs them).
# Without them it reports itself skipped (exit 77), never passed. tests/cli_shard.sh checks the
# sharding itself without a scheduler. RS_SLURM_TEST=0 skips it; RS_SLURM_TIMEOUT (s, default
# 420) bounds the whole test.
set -u
CLI=${RS_CLI:?RS_CLI not set}
START=$SECONDS
skip() { echo "RS-SKIP: cli_slurm: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
[ "${RS_SLURM_TEST:-1}" != 0 ] || skip "RS_SLURM_TEST=0 (set by scripts/ci-standalone.sh: the main suite runs it)"
[ "$(id -u)" = 0 ] || skip "needs root to start munged, slurmctld and slurmd (a one-node Slurm on loopback); run the tests as root, as CI does"
have_slurm() { for b in munged munge slurmctld slurmd sbatch squeue scontrol scancel sinfo; do command -v $b >/dev/null || return 1; done; }
if ! have_slurm; then
  echo "installing slurm-wlm and munge (scripts/install-deps.sh --slurm)"
  bash scripts/install-deps.sh --slurm >/dev/null 2>&1 || true
  have_slurm || skip "slurm-wlm and munge are not installed and could not be installed (apt-get install slurm-wlm munge)"
fi

T=$(mktemp -d /tmp/rs-slurm.XXXXXX)
chmod 755 "$T"
MUNGED= CTLD= SLURMD= WATCHDOG=
stop_all() {
  set +e
  [ -n "$WATCHDOG" ] && kill -9 "$WATCHDOG" 2>/dev/null
  if [ -n "$CTLD" ] && kill -0 "$CTLD" 2>/dev/null; then # no job outlives the test
    ids=$(squeue -h -o %A 2>/dev/null | sort -u)
    [ -n "$ids" ] && scancel $ids 2>/dev/null
    for _ in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  for p in $SLURMD $CTLD $MUNGED; do kill "$p" 2>/dev/null; done
  for _ in $(seq 50); do
    alive=
    for p in $SLURMD $CTLD $MUNGED; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $SLURMD $CTLD $MUNGED; do kill -9 "$p" 2>/dev/null; done
  # job processes left by a daemon killed hard: they name our temp folder (job scripts, run folders)
  ps -eo pid=,args= | while read -r p args; do
    case "$args" in *"$T/"*) [ "$p" != $$ ] && kill -9 "$p" 2>/dev/null ;; esac
  done
  wait 2>/dev/null
  rm -rf "$T"
}
trap stop_all EXIT
trap 'exit 1' INT TERM

# ---- the cluster: munge (its own key and socket), slurmctld, slurmd ----
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/logs"
chmod 711 "$T/munge"
head -c 1024 /dev/urandom >"$T/munge/munge.key"
chmod 400 "$T/munge/munge.key"
munged -F -f --socket="$T/munge/munge.socket" --key-file="$T/munge/munge.key" --log-file="$T/munge/munged.log" \
  --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/munged.seed" >"$T/munged.out" 2>&1 &
MUNGED=$!
for _ in $(seq 50); do [ -S "$T/munge/munge.socket" ] && break; sleep 0.1; done
[ -S "$T/munge/munge.socket" ] || { cat "$T/munged.out"; skip "munged did not start (log above)"; }
H=$(uname -n)
H=${H%%.*} # the short host name, as slurmctld and slurmd see it
NCPU=$(nproc)
MEM=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512))
export SLURM_CONF=$T/slurm.conf
write_conf() {
  cat >"$SLURM_CONF" <<EOF
ClusterName=rstest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$T/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=120
MinJobAge=600
JobRequeue=1
NodeName=$H NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM State=UNKNOWN
PartitionName=test Nodes=$H Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
}
# up to three tries on random ports (one may be taken)
for try in 1 2 3; do
  PORT=$((20000 + RANDOM % 20000))
  write_conf
  slurmctld -D -i -f "$SLURM_CONF" >"$T/slurmctld.out" 2>&1 &
  CTLD=$!
  for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
  if scontrol ping 2>/dev/null | grep -q UP; then
    slurmd -D -N "$H" -f "$SLURM_CONF" >"$T/slurmd.out" 2>&1 &
    SLURMD=$!
    for _ in $(seq 150); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.2; done
    [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break
    kill "$SLURMD" 2>/dev/null; wait "$SLURMD" 2>/dev/null; SLURMD=
  fi
  kill "$CTLD" 2>/dev/null; wait "$CTLD" 2>/dev/null; CTLD=
done
if [ -z "$CTLD" ]; then
  tail -n 20 "$T"/slurmctld.out "$T"/slurmd.out "$T"/slurmctld.log "$T"/slurmd.log 2>/dev/null
  skip "the one-node Slurm did not come up (logs above)"
fi
# a watchdog stops the daemons if this shell is killed without running its EXIT trap (SIGKILL)
( trap '' INT TERM; while kill -0 $$ 2>/dev/null; do sleep 1; done; kill $SLURMD $CTLD $MUNGED 2>/dev/null ) &
WATCHDOG=$!
echo "slurm up after $((SECONDS - START)) s: node $H, $NCPU CPUs, ports $PORT-$((PORT + 1))"

# ---- helpers ----
DEADLINE=$((START + ${RS_SLURM_TIMEOUT:-420}))
# wait_gone ID...: until squeue lists none of them (bounded by the test's deadline)
wait_gone() {
  while [ -n "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; do
    [ $SECONDS -lt $DEADLINE ] || { squeue; fail "jobs $* still queued at the deadline"; }
    sleep 0.5
  done
}
# state ID: JobState of a job or array task
state() { scontrol show job -o "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }
check_done() { # every task of the array and the merge COMPLETED with exit 0
  for id in "$@"; do
    local s
    s=$(state "$id")
    [ "$s" = COMPLETED ] || { cat "$T"/logs/* 2>/dev/null | tail -n 40; fail "job $id: $s, not COMPLETED"; }
  done
}
export REPRSHIFT=$CLI # the sbatch scripts run it (sbatch exports the environment)
Q=examples/quickstart.json
R=$T/run
ARGS=(--shard-inputs 4 --quiet) # 84 shards in all, so that a task can be cancelled between two
SB=(--parsable --cpus-per-task=1 --mem=1G --time=20)
submit_array() {
  sbatch "${SB[@]}" --array=0-2 -o "$T/logs/%x-%A_%a.out" examples/slurm/extract.sbatch $Q "$R" "${ARGS[@]}"
}
submit_merge() { sbatch "${SB[@]}" --dependency="$1" -o "$T/logs/%x-%j.out" examples/slurm/merge.sbatch "$R" --quiet; }
same_as_single() {
  diff -r -x provenance.json -x run.log "$T/single" "$R" >"$T/diff" ||
    { head -n 40 "$T/diff"; fail "$1: the merged run differs from the single-process run"; }
  echo "$1: byte-identical to the single-process run ($(find "$R" -type f | wc -l) files)"
}

# ---- the reference: one process, the same config, --shard-inputs and thread count as the
# tasks (--cpus-per-task=1). Not the caller's OMP_NUM_THREADS: with more threads the tiny VLM's
# stores move in their 7th digit on CPUs where OpenBLAS's small-matrix kernels make a product's
# bits depend on its row count (docs/cluster.md, "Threads per task") ----
"$CLI" run $Q --out "$R" "${ARGS[@]}" --threads 1 >/dev/null || fail "single-process run"
mv "$R" "$T/single"
t0=$SECONDS

# ---- an array of 3 tasks + the merge ----
J=$(submit_array) || fail "sbatch of the array"
M=$(submit_merge "afterok:$J") || fail "sbatch of the merge"
wait_gone "$J" "$M"
check_done "${J}_0" "${J}_1" "${J}_2" "$M"
grep -q "task 2 of 3 (--shard 2/3)" "$R/run.log" || fail "task 2 did not take its shard from SLURM_ARRAY_TASK_ID"
same_as_single "array of 3 + merge ($((SECONDS - t0)) s)"
mv "$R" "$T/clean"
t0=$SECONDS

# ---- fault: task 1 cancelled mid-run, requeued, merge resubmitted ----
J=$(submit_array) || fail "sbatch of the array"
M=$(submit_merge "afterok:$J") || fail "sbatch of the merge"
until grep -qs '"file": "shard-' "$R"/acts/*/part-00001-of-00003.json; do
  [ $SECONDS -lt $DEADLINE ] || fail "task 1 wrote no shard before the deadline"
  [ "$(state "${J}_1")" = COMPLETED ] && break
  sleep 0.05
done
scancel "${J}_1"
until [ "$(state "${J}_1")" = CANCELLED ] || [ "$(state "${J}_1")" = COMPLETED ]; do
  [ $SECONDS -lt $DEADLINE ] || fail "task 1 not cancelled"
  sleep 0.2
done
[ "$(state "${J}_1")" = CANCELLED ] || fail "task 1 finished before it could be cancelled (it has too few shards)"
grep -qs '"complete": false' "$R"/acts/*/part-00001-of-00003.json || fail "task 1 was not cancelled mid-run"
written=$(cat "$R"/acts/*/part-00001-of-00003.json | grep -c '"file": "shard-')
echo "task 1 cancelled after $written of its shards"
wait_gone "${J}_0" "${J}_2"
# the merge waits for ever (afterok on an array with a cancelled task); a merge by hand now names task 1
"$CLI" merge "$R" >"$T/out" 2>&1 && fail "merge with task 1 cancelled succeeded"
grep -q "task 1 of 3 (rerun it)" "$T/out" || { cat "$T/out"; fail "the merge does not name the missing task"; }
scancel "$M"
scontrol requeue "${J}_1" || fail "scontrol requeue"
scontrol update jobid="${J}_1" StartTime=now >/dev/null || true # skip Slurm's hold of a requeued job
M=$(submit_merge "afterok:${J}_0:${J}_1:${J}_2") || fail "sbatch of the merge"
wait_gone "${J}_1" "$M"
check_done "${J}_0" "${J}_1" "${J}_2" "$M"
grep -Eq "task 1 of 3: [0-9]+ shards \(.*\), [1-9][0-9]* already written" "$R/run.log" ||
  fail "the requeued task 1 did not resume its part"
same_as_single "array with task 1 cancelled and requeued ($((SECONDS - t0)) s)"
echo "cli_slurm: wall time $((SECONDS - START)) s"
