#!/usr/bin/env bash
# Job arrays without a scheduler (docs/cluster.md): `run --shard I/N` tasks of a small experiment,
# one SIGKILLed mid-run and resumed, then `merge`; the merged run folder must be byte-identical
# to a single-process run (stores, indexes, manifest, results, markers, report). Bad input:
# malformed --shard and Slurm variables, --force, N changed between tasks, two tasks with the
# same --shard, merge with a missing task / a part written for another config, merge while a
# task runs. tests/cli_slurm.sh runs the same through a real Slurm.
set -u
. "$(dirname "$0")/shared.sh"
cli_init
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
# a small experiment on the bundled COCO sample (shared.sh small_config): 2 groups x 5 images, layers 1-2
small_config "$T/small.json"
ln -s small.json "$T/alias.json"
Q=$T/small.json
R=$T/run
S="--shard-inputs 1 --threads 1 --quiet" # one input per shard, so that a task can be killed between two

# ---- bad input: nothing is written ----
for bad in 3/3 1/0 -1/3 x 1/ /3 1/3x 0/100000; do
  expect 2 "is not I/N" -- "$CLI" run $Q --out "$T/x" --shard "$bad"
done
expect 2 "not a contiguous range" -- env SLURM_ARRAY_TASK_ID=5 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=3 \
  "$CLI" run $Q --out "$T/x"
expect 2 "--force with --shard" -- "$CLI" run $Q --out "$T/x" --shard 0/2 --force
expect 2 "--force with --shard" -- env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 "$CLI" run $Q --out "$T/x" --force
[ -e "$T/x" ] && fail "a refused task created the run folder"
expect 1 "stages/tasks.json: missing" -- "$CLI" merge "$T/x"
expect 0 "task I (0..N-1)" -- "$CLI" run --help
expect 0 "byte-identical to a single-process run" -- "$CLI" merge --help

# ---- the reference: one process ----
"$CLI" run $Q --out "$R" $S >/dev/null || fail "single run"
mv "$R" "$T/single"

# ---- the array: task 0 killed mid-run, 1 and 2 concurrently ----
"$CLI" run $Q --out "$R" $S --shard 0/3 & k=$!
killed=
for _ in $(seq 600); do # up to 60 s for task 0's first shard
  if grep -qs '"file": "shard-' "$R"/acts/*/part-00000-of-00003.json; then kill -9 $k 2>/dev/null && killed=1; break; fi
  kill -0 $k 2>/dev/null || break
  sleep 0.1
done
wait $k 2>/dev/null
[ -n "$killed" ] || echo "note: task 0 finished before it could be killed"
# the caller's own Slurm variables are overridden by --shard
SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=9 "$CLI" run $Q --out "$R" $S --shard 1/3 & a=$!
wait $a || fail "task 1"
# a task given the config spelled otherwise (other fingerprints) is refused while parts exist
expect 1 "every task of an array needs the same config" -- "$CLI" run "$T/alias.json" --out "$R" $S --shard 2/3
expect 1 "every task of an array needs the same config" -- "$CLI" run $Q --out "$R" --quiet --shard 2/3
if [ -n "$killed" ]; then
  expect 1 "task 0 of 3 (rerun it)" -- "$CLI" merge "$R"
fi
SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=3 "$CLI" run $Q --out "$R" $S || fail "task 2 (Slurm variables)"
grep -q "task 2 of 3 (--shard 2/3)" "$R/stages/task-00002-of-00003.log" || fail "Slurm variables not used"
# N changed between tasks; two tasks with one --shard
expect 1 "a part of a split into 3 tasks, but this task is one of 4" -- "$CLI" run $Q --out "$R" $S --shard 1/4
lk=$(ls "$R"/acts/*/part-00001-of-00003.lock | head -1)
exec 9>>"$lk"; flock 9 # this shell holds task 1's part, as a running task 1 would
expect 1 "being written by another process (two tasks with the same --shard 1/3?)" -- "$CLI" run $Q --out "$R" $S --shard 1/3
exec 9>&-
# a task still running: the merge is refused (the run folder's lock is shared by the tasks)
exec 9>>"$R/.lock"; flock -s 9
expect 1 "another \`reprshift run\` is using this run folder (or a task of a job array is)" -- "$CLI" merge "$R"
exec 9>&-
# the killed task resumes; a complete task exits at once
"$CLI" run $Q --out "$R" $S --shard 0/3 || fail "task 0 rerun"
if [ -n "$killed" ]; then
  grep -q "already written" "$R/stages/task-00000-of-00003.log" || fail "task 0 did not resume"
fi
"$CLI" run $Q --out "$R" $S --shard 1/3 || fail "task 1 rerun"
grep -q "its shards were complete already" "$R/stages/task-00001-of-00003.log" || fail "task 1 redid its shards"
# a part written for another config is named by the merge
cp -r "$R" "$T/other"
sed -i 's/"manifest_hash": "[0-9a-f]*"/"manifest_hash": "0000"/' "$T/other"/acts/llm_text/part-*.json
sed -i "s#$R#$T/other#" "$T/other/stages/tasks.json"
expect 1 "was written for other inputs" -- "$CLI" merge "$T/other"
rm -rf "$T/other"

# ---- merge, from another folder: identical to the single run (at the single run's --threads 1:
# the downstream and conditions CE move in the 7th digit with the thread count) ----
( cd / && "$CLI" merge "$R" --threads 1 --quiet >"$T/report" ) || fail "merge"
[ "$(cat "$T/report")" = "$R/report.html" ] || fail "merge printed $(cat "$T/report")"
mv "$R" "$T/array"
diff -r -x provenance.json -x run.log "$T/single" "$T/array" || fail "merged run differs from the single run"
grep -q "^---- task-00000-of-00003.log ----" "$T/array/run.log" || fail "task logs not folded into run.log"
# merged again, with the config given: every stage complete, nothing changes
mv "$T/array" "$R"
expect 1 "give the config with --config" -- "$CLI" merge "$R"
"$CLI" merge "$R" --config $Q --shard-inputs 1 --threads 1 --quiet >/dev/null || fail "second merge"
mv "$R" "$T/array"
diff -r -x provenance.json -x run.log "$T/single" "$T/array" || fail "second merge changed the run"
echo "ok"
