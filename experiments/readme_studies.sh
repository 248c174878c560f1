#!/usr/bin/env bash
# Reruns every study whose claims the README shows, in the cpu setting (the README's numbers), then
# regenerates the README's Results section from their claims.json files. wmt14 needs the TFDS catalog data
# (internet) and a GPU, so it is not part of this script; bible_es_en needs the SWORD modules
# (`apt-get install sword-text-sparv sword-text-web`).
#
#   bash experiments/readme_studies.sh [OUT_DIR]      # default runs/cpu; a few hours on a 2-core CPU
set -euo pipefail
out=${1:-runs/cpu}
python=${PYTHON:-python}
studies=(bottleneck_vs_attention reverse_source cell_ablation attention_variants gradient_flow g2p_cmudict bible_es_en)
for study in "${studies[@]}"; do
  "$python" -m "experiments.$study" --setting=cpu --workdir="$out/$study"
done
"$python" -m experiments.readme_results "${studies[@]/#/$out/}"
