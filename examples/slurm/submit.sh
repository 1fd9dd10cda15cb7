#!/bin/bash
# Submit the extraction array of N tasks and the merge, which starts when every task succeeded:
#   examples/slurm/submit.sh N CONFIG RUN_DIR [extra sbatch options for both jobs]
# e.g. examples/slurm/submit.sh 8 experiments/coco.json /shared/runs/coco --partition=cpu
# Prints the two job ids. If a task fails (or is cancelled): fix the cause, rerun that task
# (scontrol requeue ARRAY_JOB_I, or RS_TASKS=N sbatch --array=I extract.sbatch CONFIG RUN_DIR),
# then submit the merge again: Slurm never satisfies afterok on an array once a task failed
#   sbatch --dependency=afterok:ARRAY_JOB_0:ARRAY_JOB_1:... merge.sbatch RUN_DIR
# (or run `reprshift merge RUN_DIR` by hand). docs/cluster.md has the details.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 N CONFIG RUN_DIR [sbatch options]" >&2; exit 2; }
N=$1 CONFIG=$2 RUN=$3
shift 3
HERE=$(cd "$(dirname "$0")" && pwd)
ARRAY=$(sbatch --parsable --array=0-$((N - 1)) "$@" "$HERE/extract.sbatch" "$CONFIG" "$RUN")
ARRAY=${ARRAY%%;*}
MERGE=$(sbatch --parsable --dependency=afterok:"$ARRAY" "$@" "$HERE/merge.sbatch" "$RUN")
echo "extraction array: $ARRAY (tasks ${ARRAY}_0..${ARRAY}_$((N - 1))); merge: ${MERGE%%;*}"
