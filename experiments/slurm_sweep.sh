#!/bin/bash
# One SLURM array task per run of a study; each task runs the command that `--list` prints on its line.
#
#   N=$(python -m experiments.cell_ablation --workdir=runs/cells --seeds=3 --list | wc -l)
#   JOB=$(sbatch --parsable --array=0-$((N - 1)) experiments/slurm_sweep.sh cell_ablation runs/cells --seeds=3)
#   sbatch --dependency=afterany:$JOB --wrap="python -m experiments.cell_ablation --workdir=runs/cells --seeds=3 --report_only"
#
# The workdir must be on a file system every node sees. A task that is preempted or requeued resumes its
# run from the last checkpoint; a finished run is skipped, so resubmitting the array is safe.
#SBATCH --job-name=seq2seq_sweep
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
study=${1:?usage: sbatch --array=0-N experiments/slurm_sweep.sh STUDY WORKDIR [STUDY FLAGS...]}
workdir=${2:?usage: sbatch --array=0-N experiments/slurm_sweep.sh STUDY WORKDIR [STUDY FLAGS...]}
shift 2
# The same flags give the same list on every task: line i + 1 is run i.
command=$(python -m "experiments.$study" --workdir="$workdir" "$@" --list | sed -n "$((SLURM_ARRAY_TASK_ID + 1))p")
if [ -z "$command" ]; then
  echo "experiments.$study --list has no line $((SLURM_ARRAY_TASK_ID + 1)); is --array larger than the list?" >&2
  exit 1
fi
echo "task $SLURM_ARRAY_TASK_ID: $command"
eval "$command"
