#!/usr/bin/env bash
# Set up, then run the image, video and audio demos on the CPU: generated real media files through
# the real loaders, tiny ViTs trained without merging, merging off-the-shelf over several r and
# during fine-tuning, comparison tables and plots, and pictures of the merged groups.
#   bash scripts/demo.sh                 # about 10 minutes on 2 CPU cores (<modality>/configs/demo.yaml)
#   bash scripts/demo.sh --full          # the longer demos, tighter error bars (demo_full.yaml)
#   bash scripts/demo.sh video           # only some modalities; key=value overrides apply to all
set -euo pipefail
cd "$(dirname "$0")/.."
modalities=()
overrides=()
config=demo
for arg in "$@"; do
  case "$arg" in
    image|video|audio) modalities+=("$arg") ;;
    --full) config=demo_full ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "scripts/demo.sh: unknown option $arg (valid: --full, image, video, audio, key=value)" >&2; exit 2 ;;
    *) overrides+=("$arg") ;;
  esac
done
bash scripts/setup.sh
[ ${#modalities[@]} -eq 0 ] && modalities=(image video audio)
for m in "${modalities[@]}"; do
  echo "################ $m demo ($m/configs/$config.yaml)"
  .venv/bin/python launch/submit.py "$m/configs/$config.yaml" ${overrides[@]+"${overrides[@]}"}
  run="runs/${config}_$m"
  .venv/bin/python launch/vis.py "$run/merge_ft" --out "$run/groups.$([ "$m" = video ] && echo gif || echo png)"
done
echo "Done. Tables and plots: runs/${config}_*/compare.{md,csv,png}; merged groups: runs/${config}_*/groups.*"
echo "TensorBoard: .venv/bin/tensorboard --logdir runs"
