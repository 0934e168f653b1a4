#!/usr/bin/env bash
# The main job on the embedded default: set up, then run the image, video and audio demos
# (generated real media files through the real loaders, tiny ViTs trained on the CPU, merging
# off-the-shelf over several r and during fine-tuning, comparison tables and plots).
# Pass "image", "video" or "audio" to run only some of them; extra key=value overrides apply to all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
modalities=()
overrides=()
for arg in "$@"; do
  case "$arg" in
    image|video|audio) modalities+=("$arg") ;;
    *) overrides+=("$arg") ;;
  esac
done
[ ${#modalities[@]} -eq 0 ] && modalities=(image video audio)
for m in "${modalities[@]}"; do
  echo "################ $m demo"
  .venv/bin/python launch/submit.py "$m/configs/demo.yaml" ${overrides[@]+"${overrides[@]}"}
  .venv/bin/python launch/vis.py "runs/demo_$m/merge_ft" --out "runs/demo_$m/groups.$([ "$m" = video ] && echo gif || echo png)"
done
echo "Done. Tables and plots: runs/demo_*/compare.{md,csv,png}; merged groups: runs/demo_*/groups.*"
echo "TensorBoard: .venv/bin/tensorboard --logdir runs"
