#!/usr/bin/env bash
# Reruns every study whose results the README shows, then regenerates the README's Results section:
# the quick setting of every study that runs offline, and the full g2p_cmudict study (1 seed).
# wmt14 needs the TFDS catalog data (internet) and a GPU, so it is not part of this script.
#
#   bash experiments/readme_studies.sh [OUT_DIR]      # default runs/readme; about 1 hour on a 2-core CPU
set -euo pipefail
out=${1:-runs/readme}
python=${PYTHON:-python}
for study in bottleneck_vs_attention reverse_source cell_ablation attention_variants gradient_flow g2p_cmudict; do
  "$python" -m "experiments.$study" --quick --workdir="$out/$study"
done
"$python" -m experiments.g2p_cmudict --seeds=1 --workdir="$out/g2p_cmudict_full"
"$python" -m experiments.readme_results --machine \
  "$out"/{bottleneck_vs_attention,reverse_source,cell_ablation,attention_variants,gradient_flow,g2p_cmudict,g2p_cmudict_full}
